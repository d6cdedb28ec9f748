// The API token the CLI sends: read from --token-file (owner-only) or FLOTILLA_TOKEN, and
// checked before it goes anywhere.
#pragma once

#include <string>

namespace flotilla::cli {

// --token-file FILE (which only its owner may read), else FLOTILLA_TOKEN, else "" (the
// coordinator then answers 401 to everything but /healthz). Throws CliError (exit 2) for a
// file others may read, an empty token, or one with spaces or control characters.
std::string loadToken(const std::string& token_file);

}  // namespace flotilla::cli

// The dashboard's files (web/), built into the coordinator by cmake/embed_files.cmake so that
// it serves them itself: nothing to install beside the binary, nothing fetched at run time.
#pragma once

#include <span>
#include <string_view>

namespace flotilla::coordinator {

struct WebAsset {
  std::string_view name;  // the file's name in web/ ("index.html", "app.js")
  std::string_view body;
};

std::span<const WebAsset> webAssets();

}  // namespace flotilla::coordinator

// The deployment log commands' rendering (cli/log.cpp): Markdown that user text cannot break or
// inject HTML into, the text blocks, the query string, and the changes file's checks.
#include "cli/log.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/api.hpp"
#include "common/rules.hpp"

namespace flotilla::cli {
namespace {

using nlohmann::json;

json entry() {
  return json{
      {"id", "checkout-7"},
      {"service", "checkout"},
      {"version", "2.0.0"},
      {"previous_versions", {"1.9.0", "1.8.5"}},
      {"environments", {"production", "staging"}},
      {"state", "rolled_back"},
      {"created_at", "2026-12-05T10:00:00.000Z"},
      {"finished_at", "2026-12-05T10:20:00.000Z"},
      {"submitted_by", "alice"},
      {"approvals", {{{"wave", "prod"}, {"by", "bob"}, {"at", "2026-12-05T10:05:00.000Z"}}}},
      {"changes", "## 2.0.0\n- new taxes\n```\nfenced\n```\n"},
      {"release_notes_url", "https://example.com/r/2.0.0"},
      {"issues",
       {{{"type", "alert"},
         {"cluster", "prod-eu-1"},
         {"step", "analyze"},
         {"message", "error_rate: 9%"}}}},
      {"issues_total", 3},
      {"issues_truncated", false},
      {"rolled_back", true},
      {"rollback_cause", "alert error_rate on prod-eu-1"},
      {"notes",
       {{{"text", "flag it next time\nand watch p95"},
         {"by", "carol"},
         {"at", "2026-12-06T09:00:00.000Z"}}}}};
}

TEST(Markdown, InlineTextCannotBreakTheDocumentOrInjectHtml) {
  EXPECT_EQ(markdownInline("<img src=x onerror=alert(1)>"),
            "&lt;img src\\=x onerror\\=alert\\(1\\)&gt;");
  EXPECT_EQ(markdownInline("# heading\n- item"), "\\# heading \\- item");
  EXPECT_EQ(markdownInline("[link](javascript:x) *b* _i_ `c` | a & b"),
            "\\[link\\]\\(javascript\\:x\\) \\*b\\* \\_i\\_ \\`c\\` \\| a &amp; b");
  EXPECT_EQ(markdownInline("1.2.3+build"), "1\\.2\\.3\\+build");
  EXPECT_EQ(markdownInline("bell\x07"), "bell?");
}

TEST(Markdown, AFenceIsLongerThanAnyBacktickRunInside) {
  EXPECT_EQ(markdownFence("plain"), "```text\nplain\n```\n");
  EXPECT_EQ(markdownFence("a\n```\nb\n````\n"), "`````text\na\n```\nb\n````\n`````\n");
  EXPECT_EQ(markdownFence("crlf\r\nend"), "```text\ncrlf\nend\n```\n");
}

TEST(Markdown, LinksAreAutolinksThatCannotBeClosedEarly) {
  EXPECT_EQ(markdownLink("https://example.com/a?b=1"), "<https://example.com/a?b=1>");
  EXPECT_EQ(markdownLink("https://x/<script>(y)"), "<https://x/%3Cscript%3E%28y%29>");
}

TEST(Markdown, ADocumentHasASectionPerEntry) {
  json e = entry();
  e["notes"][0]["text"] = "see <b>this</b>\n# not a heading";
  const std::string md = renderLogMarkdown(json::array({e}), "Deployment log: checkout");
  EXPECT_EQ(md.rfind("# Deployment log\\: checkout\n", 0), 0u) << md;
  EXPECT_NE(md.find("## checkout\\-7: checkout 1\\.9\\.0 / 1\\.8\\.5 \\-&gt; 2\\.0\\.0 "
                    "(rolled\\_back)\n"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("- **Submitted by:** alice\n"), std::string::npos) << md;
  EXPECT_NE(md.find("  - wave prod by bob at 2026\\-12\\-05T10\\:05\\:00\\.000Z\n"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("- **Release notes:** <https://example.com/r/2.0.0>\n"), std::string::npos);
  EXPECT_NE(md.find("- **Rolled back:** alert error\\_rate on prod\\-eu\\-1\n"), std::string::npos);
  EXPECT_NE(md.find("### Changes\n\n````text\n## 2.0.0\n"), std::string::npos) << md;
  EXPECT_NE(md.find("- alert \\(prod\\-eu\\-1 analyze\\)\\: error\\_rate\\: 9%\n"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("- 2 more not listed\n"), std::string::npos) << md;
  EXPECT_NE(md.find("see &lt;b&gt;this&lt;/b&gt;  \n  \\# not a heading\n"), std::string::npos)
      << md;
  EXPECT_EQ(md.find("<b>"), std::string::npos);
  EXPECT_EQ(renderLogMarkdown(json::array(), "Log"), "# Log\n\nNo deployments match.\n");
}

TEST(LogText, ABlockPerEntryWithEverythingItHolds) {
  json second = entry();
  second["id"] = "checkout-6";
  second["rolled_back"] = false;
  second["notes"] = json::array();
  second["finished_at"] = nullptr;
  const auto lines = renderLogText(json::array({entry(), second}));
  auto has = [&](const std::string& line) {
    return std::find(lines.begin(), lines.end(), line) != lines.end();
  };
  EXPECT_TRUE(has("checkout-7  checkout 1.9.0 / 1.8.5 -> 2.0.0  rolled_back"));
  EXPECT_TRUE(has("  when:          2026-12-05T10:00:00.000Z to 2026-12-05T10:20:00.000Z"));
  EXPECT_TRUE(has("  environments:  production, staging"));
  EXPECT_TRUE(has("  approved:      wave prod by bob at 2026-12-05T10:05:00.000Z"));
  EXPECT_TRUE(has("    - new taxes"));
  EXPECT_TRUE(has("  issue:         alert (prod-eu-1 analyze): error_rate: 9%"));
  EXPECT_TRUE(has("  rolled back:   alert error_rate on prod-eu-1"));
  EXPECT_TRUE(has("    and watch p95"));
  EXPECT_TRUE(has("  when:          2026-12-05T10:00:00.000Z (not finished)"));
  EXPECT_EQ(renderLogText(json::array()), std::vector<std::string>{"No deployments match."});
  // Terminal escapes from the server are neutralised.
  json hostile = entry();
  hostile["submitted_by"] = "x\x1b[2Jy";
  for (const auto& line : renderLogText(json::array({hostile}))) {
    EXPECT_EQ(line.find('\x1b'), std::string::npos) << line;
  }
}

TEST(LogQuery, EncodesEveryFilterSet) {
  LogOptions options;
  EXPECT_EQ(logQuery(options), "?limit=100");
  options.service = "checkout";
  options.environment = "prod uction";
  options.since = "2026-12-05T10:00:00+01:00";
  options.limit = 5;
  EXPECT_EQ(logQuery(options),
            "?service=checkout&environment=prod%20uction&since=2026-12-05T10%3A00%3A00%2B01%3A00"
            "&limit=5");
}

TEST(ChangesFile, ReadWhenUtf8TextWithinTheBound) {
  const std::string dir = ::testing::TempDir();
  const std::string good = dir + "/changes-good.md";
  std::ofstream(good) << "- caf\xc3\xa9\n";
  EXPECT_EQ(readChangesFile(good), "- caf\xc3\xa9\n");
  const std::string big = dir + "/changes-big.md";
  std::ofstream(big) << std::string(common::kMaxChangesBytes + 1, 'x');
  const std::string binary = dir + "/changes-binary.md";
  std::ofstream(binary) << "\x7f"
                           "ELF\x01";
  for (const std::string& file : {big, binary, dir + "/missing.md", dir}) {
    try {
      readChangesFile(file);
      ADD_FAILURE() << file << " was read";
    } catch (const CliError& e) {
      EXPECT_EQ(e.exitCode(), kExitTrouble) << file;
    }
  }
  EXPECT_THROW(checkNotesUrl("javascript:alert(1)"), CliError);
  EXPECT_NO_THROW(checkNotesUrl("https://example.com/notes"));
}

}  // namespace
}  // namespace flotilla::cli

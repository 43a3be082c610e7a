// Benchmark outputs: the charts (read back as PNG) and the markdown/JSON report writer.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "halo/bench_report.h"
#include "halo/chart.h"
#include "halo/file_system.h"
#include "halo/png_image.h"
#include "test_support.h"

namespace halo {
namespace {

int count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

TEST(Chart, CountLabelsUseBinarySuffixesWhenExact) {
  EXPECT_EQ(count_label(512), "512");
  EXPECT_EQ(count_label(4096), "4K");
  EXPECT_EQ(count_label(1536), "1536");
  EXPECT_EQ(count_label(1048576), "1M");
  EXPECT_EQ(count_label(0.25), "0.25");
}

TEST(Chart, LineChartDrawsEverySeriesAndItsLegend) {
  LineChart chart;
  chart.title = "forward ms";
  chart.x_label = "T";
  chart.log_x = chart.log_y = true;
  chart.series = {{"chunked", {200, 10, 10}, {{512, 0.5}, {4096, 3.0}, {65536, 40.0}}},
                  {"sdpa", {10, 200, 10}, {{512, 0.2}, {4096, 0.0}, {65536, 90.0}}}};  // 0: no point on a log axis
  const RgbImage image = draw_line_chart(chart);
  const test::ParsedPng p = test::parse_png(encode_png(image));
  EXPECT_EQ(p.width, static_cast<uint32_t>(image.width()));
  EXPECT_EQ(p.height, static_cast<uint32_t>(image.height()));
  EXPECT_GE(p.width, 360u);
  EXPECT_GE(p.height, 200u);
  EXPECT_TRUE(p.has_color(200, 10, 10));
  EXPECT_TRUE(p.has_color(10, 200, 10));
  EXPECT_FALSE(p.has_color(10, 10, 200));
}

TEST(Chart, BarChartColorsBarsAndMarksZeroValues) {
  BarChart chart;
  chart.bars = {{"0", 3.0, {200, 10, 10}}, {"1", 0.0, {10, 200, 10}, true}, {"2", 0.0, {10, 10, 200}}};
  const test::ParsedPng p = test::parse_png(encode_png(draw_bar_chart(chart)));
  EXPECT_GT(p.width, 3u * 16);
  EXPECT_TRUE(p.has_color(200, 10, 10));
  EXPECT_TRUE(p.has_color(10, 200, 10));   // marked: a base line though the value is 0
  EXPECT_FALSE(p.has_color(10, 10, 200));  // unmarked and 0: nothing drawn
}

TEST(Chart, SideBySideKeepsBothPanels) {
  const RgbImage a(30, 20, {1, 2, 3}), b(40, 50, {4, 5, 6});
  const RgbImage both = side_by_side({a, b});
  EXPECT_EQ(both.width(), 70);
  EXPECT_EQ(both.height(), 50);
  EXPECT_EQ(both.at(0, 0).r, 1);
  EXPECT_EQ(both.at(30, 49).r, 4);
  EXPECT_EQ(both.at(0, 30).r, 255);  // below the shorter panel: white
}

BenchReport example_report() {
  BenchReport report;
  report.title = "halo bench example";
  report.columns = {{"name", "name"}, {"tokens", "tokens"}, {"ms", "time ms", 2}};
  report.notes = "Times are medians.";
  report.rows = nlohmann::json::array({{{"name", "a"}, {"tokens", 512}, {"ms", 1.234}},
                                       {{"name", "b"}, {"tokens", 4096}, {"oom", true}}});
  for (auto& row : report.rows) stamp_bench_row(row, "Test GPU", "halo bench example --fast");
  return report;
}

TEST(BenchReport, MarkdownHasATableRowPerRow) {
  const std::string md = bench_markdown(example_report());
  EXPECT_NE(md.find("# halo bench example\n"), std::string::npos) << md;
  EXPECT_NE(md.find("Device: Test GPU."), std::string::npos) << md;
  EXPECT_NE(md.find(std::string("Commit: ") + build_commit() + "."), std::string::npos) << md;
  EXPECT_NE(md.find("`halo bench example --fast`"), std::string::npos) << md;
  EXPECT_NE(md.find("| name | tokens | time ms |\n|---|---:|---:|\n"), std::string::npos) << md;
  EXPECT_NE(md.find("| a | 512 | 1.23 |\n"), std::string::npos) << md;
  EXPECT_NE(md.find("| b | 4096 | out of memory |\n"), std::string::npos) << md;
  EXPECT_NE(md.find("Times are medians."), std::string::npos) << md;
  EXPECT_EQ(count(md, "\n|"), 4);  // header, rule, two rows
}

TEST(BenchReport, WritesJsonMarkdownAndPngAndReadsRowsBack) {
  const std::string prefix = test::make_temp_dir() + "/sub/report";
  EXPECT_EQ(read_bench_rows(prefix).size(), 0u);
  const BenchReport report = example_report();
  write_bench_report(prefix, report, RgbImage(12, 7, {0, 0, 0}));
  const nlohmann::json rows = read_bench_rows(prefix);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["tokens"], 512);
  EXPECT_EQ(rows[1]["device_name"], "Test GPU");
  EXPECT_EQ(rows[1]["commit"], build_commit());
  EXPECT_EQ(rows[1]["date"].get<std::string>().size(), 10u);  // YYYY-MM-DD
  EXPECT_EQ(read_file(prefix + ".md"), bench_markdown(report));
  const test::ParsedPng p = test::parse_png(read_file(prefix + ".png"));
  EXPECT_EQ(p.width, 12u);
  EXPECT_EQ(p.height, 7u);
  EXPECT_FALSE(path_exists(prefix + ".json.tmp"));
  test::write_text(prefix + ".json", "{\"not\": \"rows\"}");
  EXPECT_NE(test::error_of([&] { read_bench_rows(prefix); }).find("report.json: not a JSON array"), std::string::npos);
}

}  // namespace
}  // namespace halo

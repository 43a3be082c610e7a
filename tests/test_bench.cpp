// Benchmark outputs: the charts (read back as PNG), the markdown/JSON report writer, and the
// `halo bench` commands on the CPU at tiny shapes (--out files, --append, --profile traces).
// Timings are never checked, only that rows, files and summaries are what they should be.
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

using test::run_halo;

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
  EXPECT_EQ(count_label(37500), "37500");
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
  report.rows = nlohmann::json::array(
      {{{"name", "a"}, {"tokens", 512}, {"ms", 1.234}}, {{"name", "b"}, {"tokens", 4096}, {"oom", true}}});
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

const std::string kTinyKernels =
    "bench kernels --device cpu --dtype float32 --heads 2 --head-dim 16 --chunk 16 --repeat 1 ";

TEST(BenchCommands, KernelsWritesRowsTableAndChart) {
  const std::string prefix = test::make_temp_dir() + "/kernels";
  auto r = run_halo(kTinyKernels + "--shapes 1x32,2x64 --impl chunked,sdpa --out " + prefix);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("forward+backward"), std::string::npos) << r.out;
  const nlohmann::json rows = nlohmann::json::parse(read_file(prefix + ".json"));
  ASSERT_EQ(rows.size(), 8u);  // 2 shapes x 2 impls x 2 passes
  for (const auto& row : rows) {
    EXPECT_GT(row["ms"].get<double>(), 0) << row;
    EXPECT_GT(row["flop_floor_ms"].get<double>(), 0) << row;
    EXPECT_EQ(row["device_name"], "cpu");
  }
  EXPECT_EQ(rows[0]["impl"], "chunked");
  EXPECT_EQ(rows[0]["pass"], "forward");
  EXPECT_EQ(rows[3]["impl"], "sdpa");
  EXPECT_EQ(rows[7]["T"], 64);
  // SDPA causal forward FLOPs 2*2*B*H*T*T*D/2 at B=2, H=2, T=64, D=16; 989 TFLOP/s peak.
  EXPECT_NEAR(rows[6]["flop_floor_ms"].get<double>(), 2.0 * 2 * 2 * 2 * 64 * 64 * 16 / 2 / 989e12 * 1e3, 1e-15);
  const std::string md = read_file(prefix + ".md");
  EXPECT_NE(md.find("| B | T | impl | variant | pass | time ms |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 2 | 64 | chunked | chunk 16 | forward+backward |"), std::string::npos) << md;
  EXPECT_EQ(count(md, "\n| 1 | 32 |") + count(md, "\n| 2 | 64 |"), 8) << md;
  const test::ParsedPng p = test::parse_png(read_file(prefix + ".png"));
  EXPECT_GE(p.width, 2u * 360);            // forward and forward+backward panels
  EXPECT_TRUE(p.has_color(70, 110, 170));  // the first series' color

  auto again = run_halo(kTinyKernels + "--shapes 1x16 --impl naive --forward-only --out " + prefix + " --append");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  const nlohmann::json all = nlohmann::json::parse(read_file(prefix + ".json"));
  ASSERT_EQ(all.size(), 9u);
  EXPECT_EQ(all[8]["impl"], "naive");
  EXPECT_NE(read_file(prefix + ".md").find("--forward-only"), std::string::npos);
}

TEST(BenchCommands, KernelsRejectsBadShapesAndImpls) {
  auto shapes = run_halo(kTinyKernels + "--shapes 4-512");
  EXPECT_EQ(shapes.exit_code, 2) << shapes.err;
  EXPECT_NE(shapes.err.find("--shapes: '4-512' is not BxT"), std::string::npos) << shapes.err;
  auto impl = run_halo(kTinyKernels + "--shapes 1x16 --impl flash");
  EXPECT_EQ(impl.exit_code, 2) << impl.err;
  EXPECT_NE(impl.err.find("--impl: 'flash'"), std::string::npos) << impl.err;
  auto append = run_halo(kTinyKernels + "--shapes 1x16 --append");
  EXPECT_EQ(append.exit_code, 2) << append.err;
  EXPECT_NE(append.err.find("--append needs --out"), std::string::npos) << append.err;
}

TEST(BenchCommands, InferenceProfilesOneDecodeStep) {
  const std::string dir = test::make_temp_dir();
  auto r = run_halo("bench inference --model " + test::fixture("qwen3-tiny") +
                    " --contexts 16,32 --decode-tokens 2 --device cpu --dtype float32 --out " + dir +
                    "/inference --profile " + dir + "/decode.json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("profile of one step (trace: " + dir + "/decode.json)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("operator calls"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("aten::linear"), std::string::npos) << r.out;  // the step's projections
  const nlohmann::json trace = nlohmann::json::parse(read_file(dir + "/decode.json"));
  ASSERT_TRUE(trace.contains("traceEvents"));
  EXPECT_GT(trace["traceEvents"].size(), 10u);
  const nlohmann::json rows = nlohmann::json::parse(read_file(dir + "/inference.json"));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1]["context"], 32);
  EXPECT_GT(rows[1]["ms_per_token"].get<double>(), 0);
  EXPECT_NE(read_file(dir + "/inference.md").find("qwen3-tiny | 1 | 32 |"), std::string::npos);
  EXPECT_GT(test::parse_png(read_file(dir + "/inference.png")).width, 0u);
}

// A batch sweep (batched serving): a row per batch and context, decode tokens/s = batch / ms per
// token, and the chart gains the panels against the batch; a bad batch is refused.
TEST(BenchCommands, InferenceSweepsTheBatch) {
  const std::string dir = test::make_temp_dir();
  const std::string base = "bench inference --model " + test::fixture("qwen3-tiny") +
                           " --contexts 32 --decode-tokens 2 --device cpu --dtype float32 ";
  auto one = run_halo(base + "--out " + dir + "/one");
  ASSERT_EQ(one.exit_code, 0) << one.err;
  auto r = run_halo(base + "--batch 1,3,4 --out " + dir + "/sweep");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json rows = nlohmann::json::parse(read_file(dir + "/sweep.json"));
  ASSERT_EQ(rows.size(), 3u);
  for (size_t i = 0; i < rows.size(); ++i) {
    const int64_t batch = std::vector<int64_t>{1, 3, 4}[i];
    EXPECT_EQ(rows[i]["batch"], batch);
    EXPECT_EQ(rows[i]["context"], 32);
    EXPECT_NEAR(rows[i]["tokens_per_s"].get<double>(), batch * 1000.0 / rows[i]["ms_per_token"].get<double>(), 1e-6);
  }
  EXPECT_NE(read_file(dir + "/sweep.md").find("decode tokens/s"), std::string::npos);
  // Two panels for one batch, four with the sweep's tokens/s and memory against the batch.
  const auto single = test::parse_png(read_file(dir + "/one.png")), swept = test::parse_png(read_file(dir + "/sweep.png"));
  EXPECT_GT(swept.width, single.width * 3 / 2) << single.width << " vs " << swept.width;
  auto bad = run_halo(base + "--batch 1,0");
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("--batch"), std::string::npos) << bad.err;
}

// Training at another teacher's dimensions: its config.json gives the teacher, the student keeps
// a quarter of the layers; the row names the model (a trailing slash on the folder is no part of
// the name). A hybrid is refused as a teacher.
TEST(BenchCommands, TrainingTakesTheTeacherFromAModel) {
  const std::string dir = test::make_temp_dir();
  const std::string tiny = test::fixture("qwen3-tiny");
  auto r = run_halo("bench training --model " + tiny + "/ --stage 2 --batch 2 --seq-len 16 --steps 1 --device cpu --out " +
                    dir + "/train");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json rows = nlohmann::json::parse(read_file(dir + "/train.json"));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["model"], "qwen3-tiny");
  EXPECT_EQ(rows[0]["stage"], 2);
  EXPECT_GT(rows[0]["tokens_per_s"].get<double>(), 0);
  EXPECT_GT(rows[0]["trainable_parameters"].get<int64_t>(), 0);
  EXPECT_NE(read_file(dir + "/train.md").find("| qwen3-tiny | 2 | 2 | 16 |"), std::string::npos) << read_file(dir + "/train.md");
  auto convert = run_halo("convert --teacher " + tiny + " --out " + dir + "/hybrid --attn-layers 0");
  ASSERT_EQ(convert.exit_code, 0) << convert.err;
  auto hybrid = run_halo("bench training --model " + dir + "/hybrid --device cpu --batch 1 --seq-len 8 --steps 1");
  EXPECT_EQ(hybrid.exit_code, 2) << hybrid.err;
  EXPECT_NE(hybrid.err.find("is a hybrid"), std::string::npos) << hybrid.err;
}

}  // namespace
}  // namespace halo

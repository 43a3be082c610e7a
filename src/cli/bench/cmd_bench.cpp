// halo bench: measurements that are not tests. `halo bench tokenizer` times encoding of a text
// file on one thread (the first pass warms the BPE cache; the best of --repeat passes counts);
// `halo bench kernels` times lightning attention against causal SDPA over (batch, length)
// shapes, forward and forward+backward (median of --repeat), against FLOP and byte floors.
#include <ATen/ATen.h>
#include <ATen/SDPBackend.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "cli/bench/bench_commands.h"
#include "cli/bench/bench_output.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "halo/chart.h"
#include "halo/device.h"
#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/lightning_attention.h"
#include "halo/tokenizer.h"

namespace halo::cli {
namespace {

int bench_tokenizer(int argc, char** argv) {
  cxxopts::Options options("halo bench tokenizer",
                           "Encoding speed of a tokenizer on a text file, one thread.\n"
                           "Example: halo bench tokenizer --tokenizer ./Qwen3-0.6B --file brown.txt");
  // clang-format off
  options.add_options()
      ("t,tokenizer", "Tokenizer directory or file", cxxopts::value<std::string>())
      ("file", "Text file to encode", cxxopts::value<std::string>())
      ("repeat", "Timed passes (the best counts)", cxxopts::value<int>()->default_value("3"))
      ("json", "Print the result as JSON");
  // clang-format on
  add_common_options(options);
  auto result = parse_command_line(options, argc, argv);
  const std::string tok_path = require_string(result, "tokenizer", "halo bench tokenizer");
  const std::string file = require_string(result, "file", "halo bench tokenizer");
  const int repeat = result["repeat"].as<int>();
  if (repeat < 1) usage_fail("--repeat must be >= 1");
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  auto tokenizer = load_tokenizer(tok_path);
  const double load_s = std::chrono::duration<double>(clock::now() - t0).count();
  const std::string text = read_file(file);
  double cold_s = 0, best_s = 1e30;
  size_t tokens = 0;
  for (int pass = 0; pass <= repeat; ++pass) {
    auto start = clock::now();
    tokens = tokenizer->encode(text).size();
    const double s = std::chrono::duration<double>(clock::now() - start).count();
    if (pass == 0)
      cold_s = s;
    else
      best_s = std::min(best_s, s);
  }
  const double mb = text.size() / 1e6;
  if (result.count("json")) {
    nlohmann::json j = {{"file", file},     {"bytes", text.size()},         {"tokens", tokens},
                        {"load_s", load_s}, {"cold_mb_per_s", mb / cold_s}, {"warm_mb_per_s", mb / best_s}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s: %.2f MB -> %zu tokens; load %.3f s; first pass %.2f MB/s, cached %.2f MB/s (one thread)\n",
                file.c_str(), mb, tokens, load_s, mb / cold_s, mb / best_s);
  }
  return kExitOk;
}

// Median wall time of `repeat` runs of `work` after one warm-up, synchronizing the device.
double median_ms(const std::function<void()>& work, int repeat, const c10::Device& device) {
  std::vector<double> times;
  for (int i = 0; i <= repeat; ++i) {
    synchronize(device);
    auto start = std::chrono::steady_clock::now();
    work();
    synchronize(device);
    if (i > 0)
      times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

struct KernelShape {
  int64_t batch, length;
};

// "8x512,4x16K" -> {{8, 512}, {4, 16384}}.
// B x T of one kernel shape: q, k, v, the output and their gradients at H16 D128 in bf16 take
// 32 KB a token, so 2M tokens already ask for 64 GB.
constexpr int64_t kMaxKernelTokens = int64_t{1} << 21;

std::vector<KernelShape> parse_shapes(const std::string& text) {
  std::vector<KernelShape> shapes;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, comma - start);
    const size_t x = item.find('x');
    if (x == std::string::npos) usage_fail("--shapes: '", item, "' is not BxT (e.g. 4x16K)");
    const std::vector<int64_t> b = parse_count_list(item.substr(0, x), "--shapes");
    const std::vector<int64_t> t = parse_count_list(item.substr(x + 1), "--shapes");
    if (b.size() != 1 || t.size() != 1) usage_fail("--shapes: '", item, "' is not BxT (e.g. 4x16K)");
    if (b[0] * t[0] > kMaxKernelTokens) {
      usage_fail("--shapes: '", item, "' is ", b[0] * t[0], " tokens; at most ", kMaxKernelTokens,
                 " (2M) per shape fit a GPU (q, k, v, output and their gradients)");
    }
    shapes.push_back({b[0], t[0]});
    start = comma + 1;
  }
  return shapes;
}

const char* sdp_backend_name(int64_t backend) {
  switch (static_cast<at::SDPBackend>(backend)) {
    case at::SDPBackend::math:
      return "math";
    case at::SDPBackend::flash_attention:
      return "flash";
    case at::SDPBackend::efficient_attention:
      return "efficient";
    case at::SDPBackend::cudnn_attention:
      return "cudnn";
    default:
      return "other";
  }
}

// Forward FLOPs of one op per (batch, head), counting a multiply-add as 2:
//   sdpa (causal):  QK^T and PV over the lower triangle: 2 * 2 * T * T * D / 2
//   chunked (chunk C): QK^T within chunks 2*T*C*D + PV 2*T*C*D + chunk states K^T V 2*T*D*D
//                      + inter-chunk q S 2*T*D*D (the masked half of each chunk is computed)
//   naive:          the full masked T x T form: QK^T 2*T*T*D + PV 2*T*T*D
//   recurrent:      per token k^T v 2*D*D + q S 2*D*D
// The backward is counted as 2.5 x the forward (two matmuls per forward matmul, plus recomputed
// scores), so forward + backward = 3.5 x forward.
double forward_flops(const std::string& impl, double t, double d, double chunk) {
  if (impl == "sdpa") return 2.0 * 2.0 * t * t * d / 2.0;
  if (impl == "chunked") return 4.0 * t * std::min(chunk, t) * d + 4.0 * t * d * d;
  if (impl == "naive") return 4.0 * t * t * d;
  return 4.0 * t * d * d;
}

RgbImage kernels_chart(const nlohmann::json& rows) {
  std::vector<RgbImage> panels;
  for (const char* pass : {"forward", "forward+backward"}) {
    LineChart chart;
    chart.title = std::string(pass) + " ms";
    chart.x_label = "T (tokens per sequence)";
    chart.log_x = chart.log_y = true;
    for (const auto& row : rows) {
      if (row.value("pass", "") != pass || !row.contains("ms")) continue;
      const std::string impl = row.value("impl", "");
      auto it =
          std::find_if(chart.series.begin(), chart.series.end(), [&](const LineSeries& s) { return s.name == impl; });
      if (it == chart.series.end())
        it = chart.series.insert(chart.series.end(), {impl, series_color(chart.series.size()), {}});
      it->points.emplace_back(row["T"].get<double>(), row["ms"].get<double>());
    }
    panels.push_back(draw_line_chart(chart));
  }
  return side_by_side(panels);
}

int bench_kernels(int argc, char** argv) {
  cxxopts::Options options(
      "halo bench kernels",
      "Time attention kernels over (batch, length) shapes: lightning attention (naive, chunked, recurrent) and\n"
      "causal SDPA (at::scaled_dot_product_attention; flash on a GPU in bf16), forward and forward+backward,\n"
      "median of --repeat runs after a warm-up. Reports ms, TFLOP/s, GB/s and the time floors set by\n"
      "--peak-tflops and --peak-gbps. Example: halo bench kernels --shapes 8x512,4x16K --out runs/bench/kernels");
  // clang-format off
  options.add_options()
      ("shapes", "BxT pairs (K = 1024)", cxxopts::value<std::string>()->default_value("8x512,4x2K,4x4K,2x8K,4x16K,1x64K"))
      ("impl", "Comma-separated: chunked, naive, recurrent, sdpa", cxxopts::value<std::string>()->default_value("chunked,sdpa"))
      ("heads", "Heads", cxxopts::value<int64_t>()->default_value("16"))
      ("head-dim", "Head dimension", cxxopts::value<int64_t>()->default_value("128"))
      ("chunk", "Chunk size of the chunked form", cxxopts::value<int64_t>()->default_value("64"))
      ("dtype", "Input dtype: bfloat16, float16 or float32", cxxopts::value<std::string>()->default_value("bfloat16"))
      ("device", "cpu, cuda or auto", cxxopts::value<std::string>()->default_value("auto"))
      ("forward-only", "Skip forward+backward")
      ("max-naive-length", "Skip the quadratic naive form above this length", cxxopts::value<int64_t>()->default_value("8192"))
      ("repeat", "Timed runs per point (median reported)", cxxopts::value<int>()->default_value("5"))
      ("peak-tflops", "Dense peak TFLOP/s of the dtype (989: H100 SXM bf16)", cxxopts::value<double>()->default_value("989"))
      ("peak-gbps", "Peak memory bandwidth, GB/s (3350: H100 SXM)", cxxopts::value<double>()->default_value("3350"))
      ("json", "Print the rows as JSON lines");
  // clang-format on
  add_output_options(options);
  add_common_options(options);
  auto result = parse_command_line(options, argc, argv);
  const c10::Device device = parse_device(result["device"].as<std::string>());
  const c10::ScalarType dtype = parse_compute_dtype(result["dtype"].as<std::string>(), "bfloat16", device);
  const int64_t h = result["heads"].as<int64_t>(), d = result["head-dim"].as<int64_t>();
  const int64_t chunk = result["chunk"].as<int64_t>();
  const int repeat = result["repeat"].as<int>();
  const double peak_flops = result["peak-tflops"].as<double>() * 1e12,
               peak_bytes = result["peak-gbps"].as<double>() * 1e9;
  if (h < 1 || d < 1 || chunk < 1) usage_fail("--heads, --head-dim and --chunk must be >= 1");
  if (repeat < 1) usage_fail("--repeat must be >= 1");
  if (!(peak_flops > 0) || !(peak_bytes > 0)) usage_fail("--peak-tflops and --peak-gbps must be > 0");
  std::vector<std::string> impls;
  const std::string impl_list = result["impl"].as<std::string>();
  for (size_t start = 0; start <= impl_list.size();) {
    const size_t comma = std::min(impl_list.find(',', start), impl_list.size());
    const std::string impl = impl_list.substr(start, comma - start);
    if (impl != "sdpa" && impl != "chunked" && impl != "naive" && impl != "recurrent") {
      usage_fail("--impl: '", impl, "' is not chunked, naive, recurrent or sdpa");
    }
    impls.push_back(impl);
    start = comma + 1;
  }
  const std::vector<KernelShape> shapes = parse_shapes(result["shapes"].as<std::string>());
  const bool json = result.count("json") > 0, backward = !result.count("forward-only");
  std::vector<const char*> passes{"forward"};
  if (backward) passes.push_back("forward+backward");

  BenchReport report;
  report.title = "halo bench kernels";
  report.columns = {{"B", "B"},
                    {"T", "T"},
                    {"impl", "impl"},
                    {"variant", "variant"},
                    {"pass", "pass"},
                    {"ms", "time ms", 3},
                    {"tflops", "TFLOP/s"},
                    {"gbps", "GB/s"},
                    {"flop_floor_ms", "FLOP floor ms"},
                    {"byte_floor_ms", "byte floor ms"}};
  report.notes = cat(
      "H=", h, ", D=", d, ", ", scalar_type_name(dtype), " inputs; median of ", repeat,
      " runs after a warm-up. Floors: FLOPs / ", result["peak-tflops"].as<double>(), " TFLOP/s and bytes / ",
      result["peak-gbps"].as<double>(),
      " GB/s. Forward FLOPs per (batch, head), a multiply-add counted as 2: sdpa (causal) 2*2*T*T*D/2; chunked "
      "(chunk C) 2*T*C*D (QK^T) + 2*T*C*D (PV) + 2*T*D*D (chunk states) + 2*T*D*D (q S); naive 4*T*T*D; recurrent "
      "4*T*D*D. Backward = 2.5 x forward. Bytes: q, k, v read and o written (4 B*H*T*D elements) forward; forward + "
      "backward adds o, dO read and dq, dk, dv written (12 in all).");
  BenchOutput output(result, device, argc, argv, report, kernels_chart);

  const at::Tensor decay = alibi_decays(h).to(device);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const double element = static_cast<double>(c10::elementSize(dtype));
  if (!json) {
    std::printf("%s (%s), %s, H=%lld D=%lld, chunk %lld, median of %d\n", device_name(device).c_str(),
                device.str().c_str(), scalar_type_name(dtype), static_cast<long long>(h), static_cast<long long>(d),
                static_cast<long long>(chunk), repeat);
    std::printf("%5s %8s  %-10s %-17s %10s %9s %8s %10s %10s\n", "B", "T", "impl", "pass", "ms", "TFLOP/s", "GB/s",
                "FLOP floor", "byte floor");
  }
  for (const KernelShape& shape : shapes) {
    const int64_t b = shape.batch, t = shape.length;
    at::Tensor q, k, v, grad;
    bool shape_oom = false;
    try {
      auto opts = at::TensorOptions().dtype(dtype).device(device);
      q = at::randn({b, h, t, d}, opts), k = at::randn({b, h, t, d}, opts), v = at::randn({b, h, t, d}, opts);
      grad = at::randn({b, h, t, d}, opts);
    } catch (const c10::OutOfMemoryError&) {
      shape_oom = true;
    }
    for (const std::string& impl : impls) {
      if (impl == "naive" && t > result["max-naive-length"].as<int64_t>()) continue;
      auto run = [&](const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in) {
        if (impl == "sdpa") return at::scaled_dot_product_attention(q_in, k_in, v_in, {}, 0.0, true, scale);
        return lightning_attention(q_in, k_in, v_in, decay, scale, parse_lightning_impl(impl), {}, chunk).out;
      };
      for (const char* pass : passes) {
        const bool both = std::string(pass) == "forward+backward";
        nlohmann::json row = {{"bench", "kernels"},
                              {"device", device.str()},
                              {"dtype", scalar_type_name(dtype)},
                              {"B", b},
                              {"H", h},
                              {"D", d},
                              {"T", t},
                              {"impl", impl},
                              {"pass", pass}};
        const double flops = static_cast<double>(b * h) * forward_flops(impl, t, d, chunk) * (both ? 3.5 : 1.0);
        const double bytes = static_cast<double>(b * h * t * d) * element * (both ? 12 : 4);
        if (impl == "chunked") row["variant"] = cat("chunk ", chunk);
        auto time_pass = [&] {
          if (!both) {
            c10::InferenceMode guard;
            return median_ms([&] { run(q, k, v); }, repeat, device);
          }
          at::Tensor qg = q.detach().requires_grad_(), kg = k.detach().requires_grad_(),
                     vg = v.detach().requires_grad_();
          return median_ms(
              [&] {
                for (at::Tensor* x : {&qg, &kg, &vg}) x->mutable_grad().reset();
                run(qg, kg, vg).backward(grad);
              },
              repeat, device);
        };
        if (shape_oom) {
          row["oom"] = true;  // the inputs did not fit
        } else {
          try {
            if (impl == "sdpa") row["variant"] = sdp_backend_name(at::_fused_sdp_choice(q, k, v, {}, 0.0, true, scale));
            const double ms = time_pass();
            row["ms"] = ms;
            row["tflops"] = flops / (ms * 1e-3) / 1e12;
            row["gbps"] = bytes / (ms * 1e-3) / 1e9;
          } catch (const c10::OutOfMemoryError&) {
            row["oom"] = true;
          }
        }
        row["flop_floor_ms"] = flops / peak_flops * 1e3;
        row["byte_floor_ms"] = bytes / peak_bytes * 1e3;
        output.add(row);
        if (json) {
          std::printf("%s\n", row.dump().c_str());
        } else if (row.contains("oom")) {
          std::printf("%5lld %8lld  %-10s %-17s %10s\n", static_cast<long long>(b), static_cast<long long>(t),
                      impl.c_str(), pass, "out of memory");
        } else {
          std::printf("%5lld %8lld  %-10s %-17s %10.3f %9.1f %8.0f %10.3f %10.3f\n", static_cast<long long>(b),
                      static_cast<long long>(t), impl.c_str(), pass, row["ms"].get<double>(),
                      row["tflops"].get<double>(), row["gbps"].get<double>(), row["flop_floor_ms"].get<double>(),
                      row["byte_floor_ms"].get<double>());
        }
        std::fflush(stdout);
      }
    }
  }
  return kExitOk;
}

}  // namespace

int run_bench(int argc, char** argv) {
  const std::string what = argc >= 2 ? argv[1] : "";
  if (what == "tokenizer") return bench_tokenizer(argc - 1, argv + 1);
  if (what == "kernels") return bench_kernels(argc - 1, argv + 1);
  if (what == "inference") return bench_inference(argc - 1, argv + 1);
  if (what == "training") return bench_training(argc - 1, argv + 1);
  if (what == "--help" || what == "-h") {
    std::printf(
        "Usage: halo bench WHAT [OPTIONS]   (halo bench WHAT --help for its options)\n\n"
        "  tokenizer   encoding speed of a tokenizer on a text file\n"
        "  kernels     lightning attention and SDPA, forward and backward, over (batch, length) shapes\n"
        "  inference   prefill and per-token decode time against context length (real dimensions)\n"
        "  training    tokens/s, MFU and peak memory of HALO training steps (real dimensions)\n");
    return kExitOk;
  }
  usage_fail("halo bench: say what to measure: tokenizer, kernels, inference or training (see halo bench --help)");
}

}  // namespace halo::cli

// halo bench inference / training: real model dimensions with random weights (no weight files
// needed). Inference: prefill time and time per output token against context length, batch
// 1 or more, peak GPU memory; an out-of-memory point is reported as such and the sweep goes
// on. Training: tokens/s, MFU and peak memory of optimizer steps of stage 1, 2 or 3 at a given
// shape. Architectures: qwen3-1.7b, hypenet-2b (its released attention layers), or --model DIR
// (config only; for training the teacher, whose student keeps a quarter of its layers, evenly
// spaced, as attention: the layers' places do not change the cost). JSON lines on stdout with
// --json, else a table; --out PREFIX also writes the rows as JSON, a markdown table and a chart;
// --profile FILE records one more decode step (at the last context) or training step with the
// Kineto profiler. Decode steps replay a CUDA graph (DecodeGraph) on CUDA unless --no-cuda-graph;
// the first timed step includes its capture (the median ignores it).
#include <ATen/ATen.h>
#include <c10/core/CachingDeviceAllocator.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cli/bench/bench_commands.h"
#include "cli/bench/bench_output.h"
#include "cli/bench/step_profile.h"
#include "cli/options.h"
#include "halo/causal_lm.h"
#include "halo/chart.h"
#include "halo/decode_graph.h"
#include "halo/decode_timing.h"
#include "halo/device.h"
#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/hypenet_conversion.h"
#include "halo/inference_cache.h"
#include "halo/logging.h"
#include "halo/model_config.h"
#include "halo/process_group.h"
#include "halo/trainer.h"
#include "halo/training_tasks.h"

namespace halo::cli {
namespace {

// Tokens of one step or one cache (batch x length): 16M overflows any GPU's memory many times.
constexpr int64_t kMaxBenchTokens = int64_t{1} << 24;

using clock_type = std::chrono::steady_clock;

ModelConfig qwen3_1_7b() {
  ModelConfig c;
  c.vocab_size = 151936;
  c.hidden_size = 2048;
  c.intermediate_size = 6144;
  c.num_hidden_layers = 28;
  c.num_attention_heads = 16;
  c.num_key_value_heads = 8;
  c.head_dim = 128;
  c.max_position_embeddings = 1048576;
  c.rope_theta = 1000000.0;
  c.tie_word_embeddings = true;
  c.dtype = "bfloat16";
  c.mixer_types.assign(28, MixerType::attention);
  return c;
}

ModelConfig architecture(const std::string& name, const std::string& model_dir) {
  if (!model_dir.empty()) return load_model_config(model_dir);
  const ModelConfig qwen = qwen3_1_7b();
  if (name == "qwen3-1.7b") return qwen;
  if (name == "hypenet-2b") return hypenet_config(qwen, preset_attention_layers("hypenet-2b", qwen));
  usage_fail("--arch: '", name, "' is not qwen3-1.7b or hypenet-2b (or give --model DIR)");
}

// Random weights made directly on the device (normal(0, 0.02), norms ones): fast at 2B scale.
CausalLM random_model(const ModelConfig& config, const c10::Device& device, c10::ScalarType dtype) {
  CausalLM model(config);
  auto options = at::TensorOptions().device(device).dtype(dtype);
  auto parameters = model.named_parameters();
  const std::vector<ParameterSpec> specs = parameter_specs(config);
  for (size_t i = 0; i < specs.size(); ++i) {
    const std::vector<int64_t>& shape = specs[i].shape;
    *parameters[i].second = shape.size() == 1 ? at::ones(shape, options) : at::empty(shape, options).normal_(0.0, 0.02);
  }
  model.to(device, dtype);
  return model;
}

double seconds_since(clock_type::time_point start, const c10::Device& device) {
  synchronize(device);
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

// Adds (x, y) to the chart's series called `name`, opening it (next color) if new.
void add_point(LineChart& chart, const std::string& name, double x, double y) {
  auto it = std::find_if(chart.series.begin(), chart.series.end(), [&](const LineSeries& s) { return s.name == name; });
  if (it == chart.series.end()) it = chart.series.insert(chart.series.end(), {name, series_color(chart.series.size()), {}});
  it->points.emplace_back(x, y);
}

// Decode tokens/s and peak memory against the batch, a line per model and context (batched
// serving).
std::vector<RgbImage> batch_panels(const nlohmann::json& rows) {
  LineChart throughput, memory;
  throughput.title = "decode tokens/s (all sequences)";
  memory.title = "peak GB";
  for (LineChart* chart : {&throughput, &memory}) {
    chart->x_label = "batch";
    chart->log_x = true;
  }
  for (const auto& row : rows) {
    if (!row.contains("ms_per_token")) continue;
    const std::string name = cat(base_name(row.value("arch", "")), " ", count_label(row["context"].get<double>()));
    add_point(throughput, name, row["batch"].get<double>(), row["tokens_per_s"].get<double>());
    add_point(memory, name, row["batch"].get<double>(), row["peak_gb"].get<double>());
  }
  return {draw_line_chart(throughput), draw_line_chart(memory)};
}

// One series per (arch, batch): ms per token (linear) and prefill seconds (log) against context;
// when some model and context were measured at several batch sizes, the batch panels too.
RgbImage inference_chart(const nlohmann::json& rows) {
  std::map<std::pair<std::string, int64_t>, std::set<int64_t>> batches;  // (arch, context) -> batches
  for (const auto& row : rows) {
    batches[{row.value("arch", ""), row.value("context", int64_t{0})}].insert(row.value("batch", int64_t{1}));
  }
  const bool sweep = std::any_of(batches.begin(), batches.end(), [](const auto& entry) { return entry.second.size() > 1; });
  LineChart per_token, prefill;
  per_token.title = "decode ms per token";
  prefill.title = "prefill s";
  prefill.log_y = true;
  for (LineChart* chart : {&per_token, &prefill}) {
    chart->x_label = "context (tokens)";
    chart->log_x = true;
  }
  for (const auto& row : rows) {
    if (!row.contains("ms_per_token")) continue;
    const int64_t batch = row.value("batch", int64_t{1});
    const std::string name = base_name(row.value("arch", "")) + (batch > 1 ? cat(" b", batch) : "");
    add_point(per_token, name, row["context"].get<double>(), row["ms_per_token"].get<double>());
    add_point(prefill, name, row["context"].get<double>(), row["prefill_s"].get<double>());
  }
  std::vector<RgbImage> panels = {draw_line_chart(per_token), draw_line_chart(prefill)};
  if (sweep) {
    for (RgbImage& panel : batch_panels(rows)) panels.push_back(std::move(panel));
  }
  return side_by_side(panels);
}

// One bar per row (stage and shape): tokens/s and MFU.
RgbImage training_chart(const nlohmann::json& rows) {
  BarChart tokens, mfu;
  tokens.title = "tokens/s";
  mfu.title = "MFU %";
  for (BarChart* chart : {&tokens, &mfu}) chart->slot = 96, chart->bar_width = 40;
  for (const auto& row : rows) {
    const int stage = row.value("stage", 0);
    const std::string label =
        cat("S", stage, " ", row.value("batch", int64_t{0}), "x", row.value("seq_len", int64_t{0}));
    const Rgb color = series_color(static_cast<size_t>(std::max(stage - 1, 0)));
    tokens.bars.push_back({label, row.value("tokens_per_s", 0.0), color});
    mfu.bars.push_back({label, row.value("mfu_percent", 0.0), color});
  }
  return side_by_side({draw_bar_chart(tokens), draw_bar_chart(mfu)});
}

// The profile summary goes to stdout, or to stderr when stdout carries JSON lines.
void print_profile(const std::string& summary, bool json) {
  std::fprintf(json ? stderr : stdout, "%s", summary.c_str());
}

}  // namespace

int bench_inference(int argc, char** argv) {
  cxxopts::Options options("halo bench inference",
                           "Prefill time and time per output token against context length, random weights.\n"
                           "Example: halo bench inference --arch hypenet-2b --contexts 4K,32K,128K,1M\n"
                           "Batched serving: halo bench inference --arch qwen3-1.7b --contexts 32K --batch 1,4,16,64");
  // clang-format off
  options.add_options()
      ("arch", "qwen3-1.7b or hypenet-2b", cxxopts::value<std::string>()->default_value("hypenet-2b"))
      ("model", "Take the architecture from this model directory's config.json instead", cxxopts::value<std::string>())
      ("contexts", "Context lengths (K = 1024, M = 1048576)", cxxopts::value<std::string>()->default_value("4K,32K,128K"))
      ("batch", "Sequences decoded together; a list (1,4,16,64) measures each: decode tokens/s and memory "
                "against the batch, out of memory shown as such", cxxopts::value<std::string>()->default_value("1"))
      ("decode-tokens", "Timed decode steps per context (median reported)", cxxopts::value<int64_t>()->default_value("16"))
      ("prefill-chunk", "Tokens per prefill chunk", cxxopts::value<int64_t>()->default_value("16384"))
      ("dtype", "bfloat16, float16 or float32", cxxopts::value<std::string>()->default_value("bfloat16"))
      ("device", "cuda, cpu or auto", cxxopts::value<std::string>()->default_value("auto"))
      ("no-cuda-graph", "Run each decode step eagerly instead of replaying one CUDA graph")
      ("json", "JSON lines");
  // clang-format on
  add_output_options(options);
  add_profile_option(options);
  add_common_options(options);
  auto result = parse_command_line(options, argc, argv);
  const c10::Device device = parse_device(result["device"].as<std::string>());
  const c10::ScalarType dtype = parse_compute_dtype(result["dtype"].as<std::string>(), "bfloat16", device);
  const bool use_graph = result.count("no-cuda-graph") == 0 && DecodeGraph::replays_on(device);
  const ModelConfig config =
      architecture(result["arch"].as<std::string>(), result.count("model") ? result["model"].as<std::string>() : "");
  const std::vector<int64_t> batches = parse_count_list(result["batch"].as<std::string>(), "--batch");
  const int64_t steps = result["decode-tokens"].as<int64_t>();
  const int64_t chunk = result["prefill-chunk"].as<int64_t>();
  for (int64_t batch : batches) {
    if (batch < 1 || batch > 4096) usage_fail("--batch must be 1 to 4096, not ", batch);
  }
  if (steps < 1 || steps > 100000) usage_fail("--decode-tokens must be 1 to 100000, not ", steps);
  if (chunk < 1 || chunk > kMaxBenchTokens) usage_fail("--prefill-chunk must be 1 to ", kMaxBenchTokens, ", not ", chunk);
  const std::string profile = result.count("profile") ? result["profile"].as<std::string>() : "";
  const std::vector<int64_t> contexts = parse_count_list(result["contexts"].as<std::string>(), "--contexts");
  for (int64_t context : contexts) {
    for (int64_t batch : batches) {
      if (context > kMaxBenchTokens / batch) {
        usage_fail("--contexts ", context, " x --batch ", batch, " is beyond ", kMaxBenchTokens, " tokens of cache");
      }
    }
  }
  BenchReport report;
  report.title = "halo bench inference";
  report.columns = {{"arch", "model"},
                    {"batch", "batch"},
                    {"context", "context tokens"},
                    {"prefill_s", "prefill s", 2},
                    {"ms_per_token", "decode ms/token", 2},
                    {"tokens_per_s", "decode tokens/s", 0},
                    {"cache_gb", "cache GB", 2},
                    {"peak_gb", "peak GB", 1}};
  report.notes =
      cat("Random weights at the model's real dimensions, ", scalar_type_name(dtype), ". Prefill in chunks of ", chunk,
          " tokens; decode ms/token is the median of ", steps, " greedy steps after the prefill (one token for every "
          "sequence of the batch); decode tokens/s = batch / that.");
  BenchOutput output(result, device, argc, argv, report, inference_chart);
  c10::InferenceMode guard;
  CausalLM model = random_model(config, device, dtype);
  const std::string arch = result.count("model") ? result["model"].as<std::string>() : result["arch"].as<std::string>();
  const bool json = result.count("json") > 0;
  if (!json) {
    std::printf("%s, %lld parameters, %s on %s, decode %s\n", arch.c_str(),
                static_cast<long long>(model.parameter_count()), scalar_type_name(dtype), device.str().c_str(),
                use_graph ? "CUDA graph" : "eager");
    std::printf("%6s %10s %12s %16s %14s %14s\n", "batch", "context", "prefill s", "ms/token", "tokens/s", "peak GB");
  }
  for (int64_t batch : batches) {
    for (int64_t context : contexts) {
      nlohmann::json row = {
          {"bench", "inference"}, {"arch", arch},       {"device", device.str()}, {"dtype", scalar_type_name(dtype)},
          {"batch", batch},       {"context", context}, {"prefill_chunk", chunk}, {"cuda_graph", use_graph}};
      try {
        DecodeTimingOptions timing_options;
        timing_options.batch = batch;
        timing_options.context = context;
        timing_options.steps = steps;
        timing_options.prefill_chunk = chunk;
        timing_options.cuda_graph = use_graph;
        if (!profile.empty() && context == contexts.back() && batch == batches.back()) {
          timing_options.after = [&](const std::function<void()>& step) {
            print_profile(profile_step(step, device, profile), json);
          };
        }
        const DecodeTiming timing = time_decode(model, timing_options);
        row["prefill_s"] = timing.prefill_s;
        row["ms_per_token"] = timing.ms_per_token;
        row["tokens_per_s"] = static_cast<double>(batch) * 1000.0 / timing.ms_per_token;
        row["cache_gb"] = timing.cache_gb;
        row["peak_gb"] = timing.peak_gb;
      } catch (const c10::OutOfMemoryError&) {
        row["oom"] = true;
      }
      output.add(row);
      if (json) {
        std::printf("%s\n", row.dump().c_str());
      } else if (row.contains("oom")) {
        std::printf("%6lld %10lld %12s\n", static_cast<long long>(batch), static_cast<long long>(context), "out of memory");
      } else {
        std::printf("%6lld %10lld %12.2f %16.2f %14.0f %14.1f\n", static_cast<long long>(batch),
                    static_cast<long long>(context), row["prefill_s"].get<double>(), row["ms_per_token"].get<double>(),
                    row["tokens_per_s"].get<double>(), row["peak_gb"].get<double>());
      }
      std::fflush(stdout);
    }
  }
  return kExitOk;
}

int bench_training(int argc, char** argv) {
  cxxopts::Options options(
      "halo bench training",
      "Throughput of the training steps of `halo run` at real dimensions (random weights, random\n"
      "tokens): the stage's own task and optimizer step (forward, backward, clipping, AdamW) for\n"
      "stage 1 (align: teacher forward + student mixers, MSE), 2 (distill: teacher + student, KL)\n"
      "or 3 (finetune: student cross-entropy). Reports tokens/s, MFU and peak memory. The teacher is\n"
      "Qwen3-1.7B and the student HypeNet-2B, or with --model the teacher of a config.json and a\n"
      "student with a quarter of its layers as attention, evenly spaced.\n"
      "Example: halo bench training --stage 2 --batch 12 --seq-len 512\n"
      "         halo bench training --model runs/teachers/smollm2-135m --stage 2 --batch 64");
  // clang-format off
  options.add_options()
      ("stage", "1, 2 or 3", cxxopts::value<int>()->default_value("2"))
      ("model", "Take the teacher's architecture from this model directory's config.json (a Transformer)",
       cxxopts::value<std::string>())
      ("batch", "Sequences per step", cxxopts::value<int64_t>()->default_value("12"))
      ("seq-len", "Tokens per sequence", cxxopts::value<int64_t>()->default_value("512"))
      ("steps", "Timed steps (after one warm-up)", cxxopts::value<int64_t>()->default_value("5"))
      ("recompute-activations", "Recompute each layer in the backward pass instead of storing its activations")
      ("fp32-master", "Float32 master weights in AdamW (the experiment key train.fp32_master)")
      ("zero", "Under torchrun: --zero (=1) shards the AdamW state over the ranks (ZeRO-1), --zero=2 the "
               "gradients too (ZeRO-2); the experiment key train.zero", cxxopts::value<int>()->default_value("0")->implicit_value("1"))
      ("peak-tflops", "The device's dense bf16 peak, for MFU", cxxopts::value<double>()->default_value("989"))
      ("device", "cuda, cpu or auto", cxxopts::value<std::string>()->default_value("auto"))
      ("json", "JSON line");
  // clang-format on
  add_output_options(options);
  add_profile_option(options);
  add_common_options(options);
  auto result = parse_command_line(options, argc, argv);
  // Under torchrun: every rank steps with its own batch, gradients averaged (one GPU each).
  ProcessGroup& world = ProcessGroup::world();
  world.init(launch_environment());
  c10::Device device = parse_device(result["device"].as<std::string>());
  if (device.is_cuda() && world.distributed()) device = parse_device(cat("cuda:", world.local_rank()));
  const c10::ScalarType dtype = device.is_cuda() ? c10::kBFloat16 : c10::kFloat;
  const int stage = result["stage"].as<int>();
  if (stage < 1 || stage > 3) usage_fail("--stage must be 1, 2 or 3");
  const int64_t batch = result["batch"].as<int64_t>(), t = result["seq-len"].as<int64_t>();
  const int64_t steps = result["steps"].as<int64_t>();
  if (batch < 1) usage_fail("--batch must be >= 1");
  if (t < 1) usage_fail("--seq-len must be >= 1");
  if (steps < 1 || steps > 100000) usage_fail("--steps must be 1 to 100000, not ", steps);
  if (t > kMaxBenchTokens / batch) {
    usage_fail("--batch x --seq-len = ", batch, " x ", t, " tokens a step; at most ", kMaxBenchTokens, " fit a GPU");
  }
  const std::string model_dir = result.count("model") ? result["model"].as<std::string>() : "";
  const ModelConfig teacher_config = model_dir.empty() ? qwen3_1_7b() : load_model_config(model_dir);
  for (MixerType type : teacher_config.mixer_types) {
    if (type != MixerType::attention) usage_fail("--model: ", model_dir, " is a hybrid; give the Transformer it came from");
  }
  const int64_t layers = teacher_config.num_hidden_layers;
  const ModelConfig student_config = hypenet_config(
      teacher_config, model_dir.empty() ? preset_attention_layers("hypenet-2b", teacher_config)
                                        : evenly_spaced_layers(layers, std::max<int64_t>(1, layers / 4)));
  const std::string model_name = model_dir.empty() ? "hypenet-2b" : base_name(model_dir);
  BenchReport report;
  report.title = "halo bench training";
  report.columns = {{"model", "model"},
                    {"stage", "stage"},
                    {"batch", "batch"},
                    {"seq_len", "seq len"},
                    {"recompute", "recompute"},
                    {"world_size", "ranks"},
                    {"step_s", "step s", 3},
                    {"tokens_per_s", "tokens/s", 0},
                    {"tokens_per_s_per_rank", "tokens/s a rank", 0},
                    {"scaling_efficiency_percent", "scaling %", 1},
                    {"mfu_percent", "MFU %", 1},
                    {"peak_gb", "peak GB", 1}};
  report.notes =
      cat(model_dir.empty() ? "Qwen3-1.7B teacher, HypeNet-2B student"
                            : "The model's architecture as teacher, a quarter of its layers kept as attention",
          ", random weights and tokens; the training step of halo run "
          "(the stage's task, clipping and the AdamW update). MFU against ",
          result["peak-tflops"].as<double>(),
          " TFLOP/s; model FLOPs per token = 6 x trainable + 2 x frozen parameters (attention scores not "
          "counted). Under torchrun the batch is per rank; scaling % is a rank's tokens/s over rank 0's alone "
          "(no reduction), measured first in the same job.");
  std::optional<BenchOutput> output;  // rank 0 reports
  if (world.is_main()) output.emplace(result, device, argc, argv, report, training_chart);
  CausalLM student = random_model(stage == 1 ? hypenet_config(teacher_config, {}) : student_config, device, dtype);
  student.set_recompute_activations(result.count("recompute-activations") > 0);
  std::unique_ptr<CausalLM> teacher;  // stage 3 trains the student alone
  if (stage != 3) teacher = std::make_unique<CausalLM>(random_model(teacher_config, device, dtype));
  std::unique_ptr<TrainingTask> task;
  if (stage == 1) task = std::make_unique<AlignmentTask>(*teacher, student);
  if (stage == 2) task = std::make_unique<DistillationTask>(*teacher, student);
  if (stage == 3) task = std::make_unique<LanguageModelingTask>(student);
  TrainerConfig trainer;
  trainer.fp32_master = result.count("fp32-master") > 0;
  trainer.zero = result["zero"].as<int>();
  if (trainer.zero < 0 || trainer.zero > 2) usage_fail("--zero must be 0, 1 or 2, not ", trainer.zero);
  trainer.label = cat("bench stage ", stage);
  TrainStep train_step(trainer, *task);
  int64_t trainable = 0;
  for (const auto& [name, tensor] : train_step.parameters()) trainable += tensor.numel();
  auto step = [&] {
    const at::Tensor ids = at::randint(0, teacher_config.vocab_size, {batch, t + 1}, at::kLong);
    train_step.run({ids}, 1e-5);
  };
  auto seconds_per_step = [&] {
    step();
    reset_peak_memory(device);
    auto start = clock_type::now();
    for (int64_t s = 0; s < steps; ++s) step();
    return seconds_since(start, device) / steps;
  };
  double alone = 0;  // rank 0's step time without the reduction: the one-GPU baseline
  // (Not under --zero: rank 0 alone would update only its share of the parameters.) With one
  // rank this is the overhead of the data-parallel machinery (hooks, buckets, the backend).
  const bool baseline = world.distributed() && trainer.zero == 0;
  if (baseline) {
    if (world.is_main()) {
      train_step.data_parallel = false;
      alone = seconds_per_step();
      train_step.data_parallel = true;
    }
    world.barrier();
  }
  const double seconds = seconds_per_step();
  const double tokens = static_cast<double>(batch * t);
  // Model FLOPs per token: 6 x trainable (forward + backward) + 2 x frozen forward
  // (teacher, and the student's frozen parts), attention scores ignored.
  const double frozen = static_cast<double>(teacher ? teacher->parameter_count() : 0) +
                        static_cast<double>(student.parameter_count() - trainable) * (stage == 1 ? 0 : 1);
  const double flops = tokens * (6.0 * trainable + 2.0 * frozen);
  const double mfu = flops / seconds / (result["peak-tflops"].as<double>() * 1e12);
  nlohmann::json row = {{"bench", "training"},
                        {"model", model_name},
                        {"stage", stage},
                        {"batch", batch},
                        {"seq_len", t},
                        {"device", device.str()},
                        {"world_size", world.size()},
                        {"step_s", seconds},
                        {"tokens_per_s", tokens * world.size() / seconds},
                        {"tokens_per_s_per_rank", tokens / seconds},
                        {"scaling_efficiency_percent", baseline ? 100 * alone / seconds : world.distributed() ? NAN : 100.0},
                        {"mfu", mfu},
                        {"peak_gb", peak_memory_gb(device)},
                        {"trainable_parameters", trainable},
                        {"recompute", result.count("recompute-activations") > 0},
                        {"mfu_percent", 100 * mfu}};
  if (!world.is_main()) return kExitOk;
  output->add(row);
  if (result.count("json"))
    std::printf("%s\n", row.dump().c_str());
  else
    std::printf("stage %d, [%lld, %lld] x %d ranks: %.3f s/step, %.0f tokens/s (%.0f a rank, scaling %.1f%%), MFU "
                "%.1f%%, peak %.1f GB\n",
                stage, static_cast<long long>(batch), static_cast<long long>(t), world.size(), seconds,
                tokens * world.size() / seconds, tokens / seconds, row["scaling_efficiency_percent"].get<double>(),
                100 * mfu, peak_memory_gb(device));
  std::fflush(stdout);
  if (result.count("profile"))
    print_profile(profile_step(step, device, result["profile"].as<std::string>()), result.count("json") > 0);
  return kExitOk;
}

}  // namespace halo::cli

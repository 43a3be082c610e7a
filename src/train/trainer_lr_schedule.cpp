// learning_rate (declared in trainer.h). Steps are 0-based: step s is the (s+1)-th update.
//  - Warmup (W = warmup_steps > 0): step s < W gets lr * (s + 1) / W, a line from 0 that reaches
//    lr at the last warmup step. (torch's LambdaLR recipes use s / W, which spends the first
//    update at lr 0; this is the same line one step earlier.)
//  - cosine: steps W .. S-1 follow min_lr + (lr - min_lr) * (1 + cos(pi * p)) / 2 with
//    p = (s - W) / (S - W - 1), so step W runs at lr and the last step at exactly min_lr.
//  - wsd: warmup, lr until the last D = round(wsd_decay_fraction * S) steps (fewer when warmup
//    overlaps them), which fall linearly to min_lr: decay step k (1-based) gets
//    lr + (min_lr - lr) * k / D, the last step exactly min_lr.
//  - constant: lr after warmup.
// Steps at or past S keep the schedule's final value.
#include <algorithm>
#include <cmath>

#include "halo/error.h"
#include "halo/trainer.h"

namespace halo {

double learning_rate(const TrainerConfig& config, int64_t step) {
  const int64_t warmup = std::max<int64_t>(config.warmup_steps, 0);
  if (step < warmup) return config.lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (config.schedule == "constant") return config.lr;
  if (config.schedule == "cosine") {
    const int64_t span = std::max<int64_t>(config.steps - warmup - 1, 1);
    const double progress = std::min(1.0, static_cast<double>(step - warmup) / static_cast<double>(span));
    return config.min_lr + (config.lr - config.min_lr) * 0.5 * (1 + std::cos(M_PI * progress));
  }
  if (config.schedule == "wsd") {
    const int64_t decay =
        std::clamp<int64_t>(std::llround(config.wsd_decay_fraction * static_cast<double>(config.steps)), 0,
                            std::max<int64_t>(config.steps - warmup, 0));
    const int64_t decay_start = config.steps - decay;
    if (decay == 0 || step < decay_start) return config.lr;
    const double progress = std::min(1.0, static_cast<double>(step - decay_start + 1) / static_cast<double>(decay));
    return config.lr + (config.min_lr - config.lr) * progress;
  }
  usage_fail("learning-rate schedule '", config.schedule, "' is unknown; use cosine, wsd or constant");
}

}  // namespace halo

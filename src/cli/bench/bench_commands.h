// The `halo bench` measurements that live in their own files.
#pragma once

namespace halo::cli {

int bench_inference(int argc, char** argv);
int bench_training(int argc, char** argv);

}  // namespace halo::cli

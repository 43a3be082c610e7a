// InferenceCache: K/V buffers that double their capacity along the time axis when full (a
// decode step at a device-held slot writes into them in place and never grows them), and the
// recurrent states of lightning layers.
#include "halo/inference_cache.h"

#include <ATen/ATen.h>

#include "halo/error.h"

namespace halo {

InferenceCache::InferenceCache(int64_t num_layers) : keys_(num_layers), values_(num_layers), states_(num_layers) {}

std::pair<at::Tensor, at::Tensor> InferenceCache::append_kv(int64_t layer, const at::Tensor& k, const at::Tensor& v) {
  at::Tensor& keys = keys_.at(layer);
  at::Tensor& values = values_.at(layer);
  const int64_t t = k.size(2);
  const int64_t needed = length_ + t;
  if (!keys.defined() || keys.size(2) < needed) {
    int64_t capacity = keys.defined() ? keys.size(2) : 0;
    capacity = std::max<int64_t>({needed, capacity == 0 ? reserved_ : 2 * capacity, 64});
    at::Tensor new_keys = at::empty({k.size(0), k.size(1), capacity, k.size(3)}, k.options());
    at::Tensor new_values = at::empty({v.size(0), v.size(1), capacity, v.size(3)}, v.options());
    if (length_ > 0) {
      new_keys.narrow(2, 0, length_).copy_(keys.narrow(2, 0, length_));
      new_values.narrow(2, 0, length_).copy_(values.narrow(2, 0, length_));
    }
    keys = new_keys;
    values = new_values;
  }
  keys.narrow(2, length_, t).copy_(k);
  values.narrow(2, length_, t).copy_(v);
  return {keys.narrow(2, 0, needed), values.narrow(2, 0, needed)};
}

std::pair<at::Tensor, at::Tensor> InferenceCache::write_kv_at(int64_t layer, const at::Tensor& k, const at::Tensor& v,
                                                              const at::Tensor& slot) {
  at::Tensor& keys = keys_.at(layer);
  at::Tensor& values = values_.at(layer);
  if (!keys.defined()) fail("inference cache: layer ", layer, " has no K/V buffers to write a decode step into");
  keys.index_copy_(2, slot, k);
  values.index_copy_(2, slot, v);
  return {keys, values};
}

int64_t InferenceCache::capacity() const {
  for (const at::Tensor& keys : keys_) {
    if (keys.defined()) return keys.size(2);
  }
  return 0;
}

void InferenceCache::zero_unused_slots() {
  for (auto* list : {&keys_, &values_}) {
    for (at::Tensor& buffer : *list) {
      if (buffer.defined() && buffer.size(2) > length_) buffer.narrow(2, length_, buffer.size(2) - length_).zero_();
    }
  }
}

int64_t InferenceCache::bytes() const {
  int64_t total = 0;
  for (const auto* list : {&keys_, &values_, &states_}) {
    for (const auto& t : *list) {
      if (t.defined()) total += t.numel() * static_cast<int64_t>(t.element_size());
    }
  }
  return total;
}

}  // namespace halo

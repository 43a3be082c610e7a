// Message formatting shared by all layers.
#include "halo/error.h"

#include <cstdio>

namespace halo {

std::string fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

}  // namespace halo

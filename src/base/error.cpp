// Message formatting shared by all layers.
#include "halo/error.h"

#include <cstdio>

namespace halo {

std::string one_line(std::string_view text) {
  static const char kHex[] = "0123456789abcdef";
  std::string line;
  line.reserve(text.size());
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7F) {
      line += {'\\', 'x', kHex[byte >> 4], kHex[byte & 15]};
    } else {
      line += c;
    }
  }
  return line;
}

std::string printable(std::string_view text) {
  constexpr size_t kMaxShownBytes = 120;
  if (text.size() <= kMaxShownBytes) return one_line(text);
  return one_line(text.substr(0, kMaxShownBytes)) + "...";
}

std::string fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

}  // namespace halo

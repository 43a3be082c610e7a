// Shared test plumbing: where the fixtures are, scratch directories, running the halo CLI as a
// subprocess (exit code, stdout and stderr captured; a signal is reported as 128 + N), and
// reading back the PNG charts halo writes.
#pragma once
#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace halo::test {

// ../shared (or $HALO_SHARED when set).
std::string shared_dir();
std::string fixture(const std::string& name);  // shared_dir()/fixtures/NAME

// The device that model tests run on: $HALO_TEST_DEVICE (cpu when unset), so that
// scripts/device/test.sh runs the same suite with tensors on the GPU.
c10::Device device();

// A fresh empty directory under the system temp dir, removed at process exit.
std::string make_temp_dir();

void write_text(const std::string& path, const std::string& text);

// Writes DIR/tokenizer.json: byte-level BPE with the 256 byte tokens and no merges (one token
// per byte), so that text maps into the tiny fixtures' 1024-entry vocabulary. Returns its path.
std::string write_byte_tokenizer(const std::string& dir);

struct CommandResult {
  int exit_code;  // 128 + signal number when killed by a signal
  std::string out, err;
};

// A token directory (tokens.bin + manifest.json, as `halo data prepare` writes) holding `ids`
// as one document, for a tokenizer of `vocab_size` entries.
std::string write_token_dir(const std::vector<uint32_t>& ids, int64_t vocab_size);

// NFC of UTF-8 text by utf8proc directly (the reference the tokenizer tests compare with).
std::string nfc(const std::string& text);

// The message of the halo::Error that `f` throws, or "(no error)".
std::string error_of(const std::function<void()>& f);

// Hand-made binary files (GGUF): `value`'s bytes in the machine's (little-endian) order, and a
// string as GGUF stores it (u64 length, then the bytes).
template <class T>
void put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}
inline void put_string(std::string& out, const std::string& text) {
  put<uint64_t>(out, text.size());
  out += text;
}

// Runs the built halo binary with `args` (a shell-quoted string).
CommandResult run_halo(const std::string& args);

struct ParsedPng {
  uint32_t width = 0, height = 0;
  int bit_depth = 0, color_type = 0;
  std::vector<std::string> chunk_types;
  std::string raw;  // inflated IDAT data: per row a filter byte, then r, g, b per pixel

  // Whether any pixel has exactly this color.
  bool has_color(uint8_t r, uint8_t g, uint8_t b) const;
};

// Reads a PNG back with zlib, checking the signature and every chunk's CRC (gtest failures).
ParsedPng parse_png(const std::string& png);

}  // namespace halo::test

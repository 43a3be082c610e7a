// Test plumbing shared by all suites.
#include "test_support.h"

#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/token_corpus.h"

#include <utf8proc.h>

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <zlib.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <vector>

namespace halo::test {

std::string shared_dir() {
  const char* env = std::getenv("HALO_SHARED");
  return env != nullptr ? env : HALO_SHARED_DIR;
}

c10::Device device() {
  const char* env = std::getenv("HALO_TEST_DEVICE");
  c10::Device d(env != nullptr ? env : "cpu");
  if (d.is_cuda() && !d.has_index()) d.set_index(0);  // tensors report cuda:0
  return d;
}

std::string fixture(const std::string& name) {
  return shared_dir() + "/fixtures/" + name;
}

namespace {
std::vector<std::string>& temp_dirs() {
  static std::vector<std::string> dirs;
  static bool registered = [] {
    std::atexit([] {
      for (const auto& d : temp_dirs()) remove_tree(d);
    });
    return true;
  }();
  (void)registered;
  return dirs;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}
}  // namespace

std::string make_temp_dir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp != nullptr ? tmp : "/tmp") + "/halo-test-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  temp_dirs().push_back(pattern);
  return pattern;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::string write_byte_tokenizer(const std::string& dir) {
  nlohmann::json vocab = nlohmann::json::object();
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    int cp = printable ? b : 256 + extra++;
    std::string utf8;
    if (cp < 0x80)
      utf8 += static_cast<char>(cp);
    else {
      utf8 += static_cast<char>(0xC0 | (cp >> 6));
      utf8 += static_cast<char>(0x80 | (cp & 0x3F));
    }
    vocab[utf8] = b;
  }
  nlohmann::json tok = {
      {"version", "1.0"},
      {"added_tokens", nlohmann::json::array()},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
  write_text(dir + "/tokenizer.json", tok.dump());
  return dir + "/tokenizer.json";
}

std::string write_token_dir(const std::vector<uint32_t>& ids, int64_t vocab_size) {
  const std::string dir = make_temp_dir();
  const int64_t n = static_cast<int64_t>(ids.size());
  write_file_atomic(dir + "/tokens.bin", std::string(reinterpret_cast<const char*>(ids.data()), ids.size() * 4));
  TokenCorpusManifest m;
  m.tokenizer_path = "t.json";
  m.tokenizer_sha256 = "0";
  m.vocab_size = vocab_size;
  m.documents = 1;
  m.tokens = n;
  m.bytes = n;
  m.sources = {{"corpus.txt", 1, 0, n, n}};
  m.created = "2025-01-01T00:00:00Z";
  write_file_atomic(dir + "/manifest.json", manifest_to_json(m));
  return dir;
}

std::string nfc(const std::string& text) {
  utf8proc_uint8_t* normalized = nullptr;
  const auto length =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), static_cast<utf8proc_ssize_t>(text.size()),
                   &normalized, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (length < 0) throw std::runtime_error("utf8proc_map failed");
  std::string result(reinterpret_cast<const char*>(normalized), static_cast<size_t>(length));
  std::free(normalized);
  return result;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

CommandResult run_halo(const std::string& args) {
  const std::string dir = make_temp_dir();
  const std::string cmd = std::string(HALO_CLI_PATH) + " " + args + " >" + dir + "/out 2>" + dir + "/err";
  int status = std::system(cmd.c_str());
  CommandResult r;
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.exit_code = 128 + WTERMSIG(status);
  } else {
    r.exit_code = -1;
  }
  r.out = slurp(dir + "/out");
  r.err = slurp(dir + "/err");
  return r;
}

namespace {

uint32_t be32(const std::string& s, size_t at) {
  return (uint32_t(uint8_t(s[at])) << 24) | (uint32_t(uint8_t(s[at + 1])) << 16) | (uint32_t(uint8_t(s[at + 2])) << 8) |
         uint32_t(uint8_t(s[at + 3]));
}

}  // namespace

bool ParsedPng::has_color(uint8_t r, uint8_t g, uint8_t b) const {
  for (uint32_t y = 0; y < height; ++y) {
    for (uint32_t x = 0; x < width; ++x) {
      const size_t i = y * (1 + 3 * width) + 1 + 3 * x;
      if (i + 2 < raw.size() && uint8_t(raw[i]) == r && uint8_t(raw[i + 1]) == g && uint8_t(raw[i + 2]) == b)
        return true;
    }
  }
  return false;
}

ParsedPng parse_png(const std::string& png) {
  ParsedPng p;
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  std::string idat;
  for (size_t at = 8; at + 12 <= png.size();) {
    const uint32_t length = be32(png, at);
    const std::string type = png.substr(at + 4, 4), data = png.substr(at + 8, length);
    const std::string body = png.substr(at + 4, 4 + length);
    const uint32_t crc = static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(body.data()), body.size()));
    EXPECT_EQ(be32(png, at + 8 + length), crc) << "chunk " << type;
    p.chunk_types.push_back(type);
    if (type == "IHDR") {
      p.width = be32(data, 0);
      p.height = be32(data, 4);
      p.bit_depth = uint8_t(data[8]);
      p.color_type = uint8_t(data[9]);
    }
    if (type == "IDAT") idat += data;
    at += 12 + length;
  }
  uLongf size = static_cast<uLongf>((3 * p.width + 1) * p.height + 64);
  p.raw.assign(size, '\0');
  EXPECT_EQ(uncompress(reinterpret_cast<Bytef*>(p.raw.data()), &size, reinterpret_cast<const Bytef*>(idat.data()),
                       idat.size()),
            Z_OK);
  p.raw.resize(size);
  return p;
}

}  // namespace halo::test

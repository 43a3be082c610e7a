// manifest.json of a prepared token corpus (written in a fixed key order so that it reads well
// and diffs cleanly) and the tokenizer fingerprint it records (SHA-256 by OpenSSL).
#include <openssl/evp.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/token_corpus.h"

namespace halo {
namespace {

std::string sha256_hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    fail("SHA-256 failed (OpenSSL EVP_Digest)");
  }
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

// Reads the fields of one manifest with errors that name the file and the field.
class ManifestFields {
 public:
  ManifestFields(const nlohmann::json& object, std::string where) : object_(object), where_(std::move(where)) {
    if (!object_.is_object()) fail(where_, ": expected a JSON object");
  }
  const nlohmann::json& get(const char* key) const {
    auto it = object_.find(key);
    if (it == object_.end()) fail(where_, ": field \"", key, "\" is missing");
    return *it;
  }
  int64_t count(const char* key) const {
    const auto& v = get(key);
    if (!v.is_number_integer() || v.get<int64_t>() < 0) fail(where_, ": \"", key, "\" must be an integer >= 0");
    return v.get<int64_t>();
  }
  std::string string(const char* key) const {
    const auto& v = get(key);
    if (!v.is_string()) fail(where_, ": \"", key, "\" must be a string");
    return v.get<std::string>();
  }
  bool boolean(const char* key) const {
    const auto& v = get(key);
    if (!v.is_boolean()) fail(where_, ": \"", key, "\" must be true or false");
    return v.get<bool>();
  }

 private:
  const nlohmann::json& object_;
  std::string where_;
};

}  // namespace

std::string manifest_to_json(const TokenCorpusManifest& m) {
  nlohmann::ordered_json sources = nlohmann::ordered_json::array();
  for (const auto& s : m.sources) {
    sources.push_back({{"path", s.path},
                       {"documents", s.documents},
                       {"skipped_documents", s.skipped_documents},
                       {"tokens", s.tokens},
                       {"bytes", s.bytes}});
  }
  nlohmann::ordered_json j;
  j["format"] = kTokenCorpusFormat;
  j["dtype"] = "uint32";
  j["tokenizer"] = {{"path", m.tokenizer_path}, {"sha256", m.tokenizer_sha256}};
  j["vocab_size"] = m.vocab_size;
  j["eos_id"] = m.eos_id ? nlohmann::ordered_json(*m.eos_id) : nlohmann::ordered_json(nullptr);
  j["eos_appended"] = m.eos_appended;
  j["documents"] = m.documents;
  j["skipped_documents"] = m.skipped_documents;
  j["tokens"] = m.tokens;
  j["bytes"] = m.bytes;
  j["sources"] = std::move(sources);
  j["created"] = m.created;
  return j.dump(2) + "\n";
}

TokenCorpusManifest manifest_from_json(const std::string& text, const std::string& origin) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(origin, ": not valid JSON (", e.what(), ")");
  }
  ManifestFields f(j, origin);
  if (f.string("format") != kTokenCorpusFormat) {
    fail(origin, ": format is \"", f.string("format"), "\", expected \"", kTokenCorpusFormat, "\"");
  }
  if (f.string("dtype") != "uint32") fail(origin, ": dtype is \"", f.string("dtype"), "\", expected \"uint32\"");
  TokenCorpusManifest m;
  ManifestFields tokenizer(f.get("tokenizer"), origin + ": tokenizer");
  m.tokenizer_path = tokenizer.string("path");
  m.tokenizer_sha256 = tokenizer.string("sha256");
  m.vocab_size = f.count("vocab_size");
  if (m.vocab_size == 0) fail(origin, ": vocab_size must be >= 1");
  if (!f.get("eos_id").is_null()) {
    const int64_t eos = f.count("eos_id");
    if (eos >= m.vocab_size) fail(origin, ": eos_id ", eos, " is not below vocab_size ", m.vocab_size);
    m.eos_id = static_cast<int32_t>(eos);
  }
  m.eos_appended = f.boolean("eos_appended");
  m.documents = f.count("documents");
  m.skipped_documents = f.count("skipped_documents");
  m.tokens = f.count("tokens");
  m.bytes = f.count("bytes");
  m.created = f.string("created");
  const auto& sources = f.get("sources");
  if (!sources.is_array()) fail(origin, ": \"sources\" must be an array");
  TokenCorpusSource total;
  for (size_t i = 0; i < sources.size(); ++i) {
    ManifestFields s(sources[i], cat(origin, ": sources[", i, "]"));
    TokenCorpusSource source{s.string("path"), s.count("documents"), s.count("skipped_documents"), s.count("tokens"),
                             s.count("bytes")};
    total.documents += source.documents;
    total.skipped_documents += source.skipped_documents;
    total.tokens += source.tokens;
    total.bytes += source.bytes;
    m.sources.push_back(std::move(source));
  }
  if (total.documents != m.documents || total.skipped_documents != m.skipped_documents || total.tokens != m.tokens ||
      total.bytes != m.bytes) {
    fail(origin, ": the totals do not match the sum over \"sources\"");
  }
  return m;
}

TokenCorpusManifest read_manifest(const std::string& dir) {
  const std::string path = join_path(dir, kManifestFile);
  if (!path_exists(path)) {
    fail(path, ": not found; ", dir, " is not a complete token corpus (make one with: halo data prepare --out ", dir,
         " ...)");
  }
  return manifest_from_json(read_file(path), path);
}

TokenizerFingerprint fingerprint_tokenizer(const std::string& dir_or_file) {
  std::string file = dir_or_file;
  if (is_directory(file)) {
    file = path_exists(join_path(file, "tokenizer.json")) ? join_path(file, "tokenizer.json")
                                                          : join_path(file, "tokenizer.model");
  }
  if (!is_regular_file(file)) fail(file, ": no such tokenizer file");
  char* resolved = ::realpath(file.c_str(), nullptr);
  if (resolved == nullptr) fail(file, ": cannot resolve the path (", std::strerror(errno), ")");
  const std::string absolute = resolved;
  std::free(resolved);
  return {absolute, sha256_hex(read_file(file))};
}

}  // namespace halo

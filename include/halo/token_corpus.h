// A prepared token corpus: a directory holding tokens.bin (little-endian uint32 token ids, the
// documents concatenated, each followed by EOS) and manifest.json (what made it and what it
// holds), and the streamed pipeline that makes one from text files. The pipeline is a reader
// thread that cuts the inputs into batches of documents, worker threads that tokenize batches,
// and the calling thread writing batches back in reading order, so the output does not depend
// on the number of threads; at most a few batches per worker are in memory at once.
// Commit protocol: the old manifest is removed first, tokens go to tokens.bin.tmp, which is
// renamed to tokens.bin when complete, and the manifest is written last (atomically). A
// directory without manifest.json is never a complete corpus. No torch here.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "halo/document_reader.h"

namespace halo {

class Tokenizer;

inline constexpr const char* kTokenCorpusFormat = "halo-tokens-v1";
inline constexpr const char* kTokensFile = "tokens.bin";
inline constexpr const char* kManifestFile = "manifest.json";

struct TokenCorpusSource {
  std::string path;
  int64_t documents = 0;          // documents written (EOS-terminated unless eos_appended is false)
  int64_t skipped_documents = 0;  // empty or whitespace-only documents left out
  int64_t tokens = 0;             // tokens written, EOS included
  int64_t bytes = 0;              // input bytes read
};

struct TokenCorpusManifest {
  std::string tokenizer_path;    // the tokenizer file (tokenizer.json or .model) that was used
  std::string tokenizer_sha256;  // hex SHA-256 of that file's bytes
  int64_t vocab_size = 0;
  std::optional<int32_t> eos_id;
  bool eos_appended = true;
  int64_t documents = 0, skipped_documents = 0, tokens = 0, bytes = 0;
  std::vector<TokenCorpusSource> sources;
  std::string created;  // ISO 8601, UTC
};

std::string manifest_to_json(const TokenCorpusManifest& manifest);
// Parses and checks a manifest's fields (format, dtype, types, totals matching the sources);
// `origin` names the file in error messages.
TokenCorpusManifest manifest_from_json(const std::string& text, const std::string& origin);
// Reads DIR/manifest.json, failing with a message that says how to make one when absent.
TokenCorpusManifest read_manifest(const std::string& dir);

// Which file load_tokenizer reads for `dir_or_file` (tokenizer.json, else tokenizer.model, in a
// directory), as a canonical absolute path, with the SHA-256 of its bytes.
struct TokenizerFingerprint {
  std::string path, sha256;
};
TokenizerFingerprint fingerprint_tokenizer(const std::string& dir_or_file);

struct TokenizeCorpusOptions {
  std::vector<std::string> inputs;  // files, directories, glob patterns (expand_inputs, file_system.h)
  std::string out_dir;
  DocumentOptions documents;  // how files are read as documents (document_reader.h)
  int threads = 1;            // tokenizer workers
  bool append_eos = true;
  TokenizerFingerprint tokenizer;  // recorded in the manifest
  int64_t batch_bytes = 1 << 20;   // documents are handed to workers in batches of about this much text
};

// Tokenizes the documents of the input files as DocumentReader reads them (document_reader.h;
// a whole-file document is held in memory until its batch is written). Documents that are empty
// or only whitespace are skipped and counted. Runs `threads` workers calling tokenizer.encode
// concurrently (it must be safe to call from several threads). Returns the manifest it wrote. Fails with file (and
// line) when a document cannot be read or tokenized, and without an EOS id unless append_eos is false.
TokenCorpusManifest tokenize_corpus(const Tokenizer& tokenizer, const TokenizeCorpusOptions& options);

}  // namespace halo

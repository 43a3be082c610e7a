// SentencePiece (.model files) behind halo::Tokenizer: a thin wrapper over Debian's
// libsentencepiece that turns its util::Status failures into halo errors naming the file,
// checks input UTF-8 and id ranges itself, and takes eos from tokenizer_config.json when
// given, else from the model.
#include <sentencepiece_processor.h>

#include "halo/error.h"
#include "text/tokenizer_backends.h"

namespace halo {
namespace {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(const std::string& path, const TokenizerConfig& config) : path_(path) {
    const auto status = processor_.Load(path);
    if (!status.ok()) {
      fail(path, ": cannot load SentencePiece model (", status.ToString(), "); pass a valid .model file");
    }
    if (config.eos_token) {
      eos_id_ = token_to_id(*config.eos_token);
      if (!eos_id_) {
        fail(config.path, ": eos_token \"", printable(*config.eos_token), "\" is not a piece of ", path,
             "; fix eos_token");
      }
    } else if (processor_.eos_id() >= 0) {
      eos_id_ = processor_.eos_id();
    }
  }

  std::vector<int32_t> encode(std::string_view text) const override {
    check_utf8(text);
    std::vector<int> ids;
    const auto status = processor_.Encode(text, &ids);
    if (!status.ok()) {
      fail(path_, ": SentencePiece cannot encode the text (", status.ToString(), ")");
    }
    return std::vector<int32_t>(ids.begin(), ids.end());
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    for (const int32_t id : ids) {
      if (id < 0 || id >= vocab_size()) {
        fail("token id ", id, " is not in the vocabulary of ", path_, " (", vocab_size(), " ids)");
      }
    }
    std::string text;
    const auto status = processor_.Decode(std::vector<int>(ids.begin(), ids.end()), &text);
    if (!status.ok()) {
      fail(path_, ": SentencePiece cannot decode the ids (", status.ToString(), ")");
    }
    return text;
  }

  int32_t vocab_size() const override { return processor_.GetPieceSize(); }

  std::optional<int32_t> token_to_id(const std::string& token) const override {
    // PieceToId answers unk_id for unknown pieces; only the unknown piece itself maps there.
    const int id = processor_.PieceToId(token);
    if (id < 0 || processor_.IdToPiece(id) != token) return std::nullopt;
    return id;
  }

  std::optional<int32_t> eos_id() const override { return eos_id_; }

 private:
  std::string path_;
  sentencepiece::SentencePieceProcessor processor_;
  std::optional<int32_t> eos_id_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& model_path, const TokenizerConfig& config) {
  return std::make_unique<SentencePieceTokenizer>(model_path, config);
}

}  // namespace halo

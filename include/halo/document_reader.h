// The documents of input files, read the same way by `halo data prepare` (tokenize_corpus,
// token_corpus.h) and `halo tokenizer train` (train_bpe, bpe_trainer.h), with the options both
// commands take (--format, --split, --jsonl-field). A document's text is:
//  - text, split file: the file's bytes exactly (the whole file is held in memory);
//  - text, split blank-line: each maximal run of lines that are not blank (empty or only
//    whitespace), joined by "\n", without a trailing newline;
//  - jsonl: the string field `jsonl_field` of each line's object (blank lines are ignored; any
//    other line that is not such an object fails naming file:line).
// Text is not checked for UTF-8 here; documents may be empty or blank. No torch here.
#pragma once
#include <cstdint>
#include <fstream>
#include <string>

namespace halo {

enum class InputFormat { automatic, text, jsonl };  // automatic: .jsonl/.json -> jsonl, else text
enum class TextSplit { file, blank_line };          // a document per file, or per blank-line block

InputFormat parse_input_format(const std::string& name);  // "auto" | "text" | "jsonl"
TextSplit parse_text_split(const std::string& name);      // "file" | "blank-line"

struct DocumentOptions {
  InputFormat format = InputFormat::automatic;
  TextSplit split = TextSplit::file;  // for text files
  std::string jsonl_field = "text";   // for JSONL files
};

struct Document {
  std::string text;
  int64_t line = 0;  // first line of the document in its file; 0 for a whole-file document
};

// The documents of one input file, in order. Opening fails naming the file; so do read errors
// and bad JSONL lines (with the line number).
class DocumentReader {
 public:
  DocumentReader(std::string path, const DocumentOptions& options);

  // The next document (possibly empty or blank), or false at the end of the file.
  bool next(Document& doc);

  // Bytes of the file read so far.
  int64_t bytes_read() const { return bytes_; }

 private:
  bool read_line(std::string& line);
  bool next_block(Document& doc);
  bool next_jsonl(Document& doc);

  std::string path_;
  TextSplit split_;
  std::string field_;
  bool jsonl_ = false;
  std::ifstream in_;
  int64_t bytes_ = 0, line_ = 0;
  bool whole_file_read_ = false;
};

}  // namespace halo

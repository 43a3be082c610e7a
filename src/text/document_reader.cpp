// DocumentReader (see halo/document_reader.h) and the names of its options.
#include "halo/document_reader.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <string_view>

#include "halo/error.h"
#include "halo/file_system.h"

namespace halo {
namespace {

bool is_blank(std::string_view text) {
  return text.find_first_not_of(" \t\n\r\v\f") == std::string_view::npos;
}

}  // namespace

InputFormat parse_input_format(const std::string& name) {
  if (name == "auto") return InputFormat::automatic;
  if (name == "text") return InputFormat::text;
  if (name == "jsonl") return InputFormat::jsonl;
  usage_fail("--format must be auto, text or jsonl, not '", name, "'");
}

TextSplit parse_text_split(const std::string& name) {
  if (name == "file") return TextSplit::file;
  if (name == "blank-line") return TextSplit::blank_line;
  usage_fail("--split must be file or blank-line, not '", name, "'");
}

DocumentReader::DocumentReader(std::string path, const DocumentOptions& options)
    : path_(std::move(path)), split_(options.split), field_(options.jsonl_field) {
  InputFormat format = options.format;
  if (format == InputFormat::automatic) {
    const std::string name = base_name(path_);
    const size_t dot = name.rfind('.');
    const std::string ext = dot == std::string::npos || dot == 0 ? "" : name.substr(dot);
    format = (ext == ".jsonl" || ext == ".json") ? InputFormat::jsonl : InputFormat::text;
  }
  jsonl_ = format == InputFormat::jsonl;
  require_regular_file(path_);
  if (jsonl_ || split_ == TextSplit::blank_line) {
    in_.open(path_, std::ios::binary);
    if (!in_) fail(path_, ": cannot open (", std::strerror(errno), ")");
  }
}

bool DocumentReader::next(Document& doc) {
  if (jsonl_) return next_jsonl(doc);
  if (split_ == TextSplit::blank_line) return next_block(doc);
  if (whole_file_read_) return false;
  whole_file_read_ = true;
  doc.text = read_file(path_);
  doc.line = 0;
  bytes_ = static_cast<int64_t>(doc.text.size());
  return true;
}

bool DocumentReader::read_line(std::string& line) {
  if (!std::getline(in_, line)) {
    if (in_.bad()) fail(path_, ": read error after line ", line_);
    return false;
  }
  ++line_;
  bytes_ += static_cast<int64_t>(line.size()) + (in_.eof() ? 0 : 1);
  return true;
}

bool DocumentReader::next_block(Document& doc) {
  doc.text.clear();
  std::string line;
  while (read_line(line)) {
    if (is_blank(line)) {
      if (!doc.text.empty()) return true;
      continue;
    }
    if (doc.text.empty()) {
      doc.line = line_;
    } else {
      doc.text += '\n';
    }
    doc.text += line;
  }
  return !doc.text.empty();
}

bool DocumentReader::next_jsonl(Document& doc) {
  std::string line;
  while (read_line(line)) {
    if (is_blank(line)) continue;
    nlohmann::json object;
    try {
      object = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(path_, ":", line_, ": not valid JSON (", e.what(), ")");
    }
    if (!object.is_object()) fail(path_, ":", line_, ": expected a JSON object");
    auto field = object.find(field_);
    if (field == object.end()) {
      fail(path_, ":", line_, ": no field \"", field_, "\" (choose the field with --jsonl-field)");
    }
    if (!field->is_string()) fail(path_, ":", line_, ": field \"", field_, "\" is not a string");
    doc.text = field->get<std::string>();
    doc.line = line_;
    return true;
  }
  return false;
}

}  // namespace halo

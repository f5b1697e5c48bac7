#include "common/csv.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include "common/errors.h"

namespace brainage {

std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string::npos) return {};
  const auto last = text.find_last_not_of(" \t");
  return text.substr(first, last - first + 1);
}

CsvTable parse_delimited(const std::string& input, char delimiter, const std::string& source) {
  std::string_view text(input);
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // UTF-8 BOM

  std::vector<std::vector<std::string>> records;
  std::vector<std::size_t> starts;
  std::vector<std::string> record;
  std::string field;
  bool in_quotes = false, field_quoted = false, record_has_content = false;
  std::size_t line = 1, record_line = 1, quote_line = 0;

  auto end_field = [&] {
    record.push_back(field_quoted ? field : trim(field));
    field.clear();
    field_quoted = false;
  };
  auto end_record = [&] {
    end_field();
    const bool blank = !record_has_content && record.size() == 1 && record[0].empty();
    if (!blank) {
      records.push_back(std::move(record));
      starts.push_back(record_line);
    }
    record.clear();
    record_has_content = false;
  };

  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_quotes) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          in_quotes = false;
        }
      } else {
        if (c == '\n') ++line;
        if (c != '\r' || (i + 1 < text.size() && text[i + 1] != '\n')) field += c;
      }
      continue;
    }
    if (c == '"' && trim(field).empty()) {
      in_quotes = field_quoted = record_has_content = true;
      quote_line = line;
      field.clear();
    } else if (c == delimiter) {
      end_field();
      record_has_content = true;
    } else if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      end_record();
      ++line;
      record_line = line;
    } else {
      if (!field_quoted) field += c;  // text after a closing quote is ignored
      if (c != ' ' && c != '\t') record_has_content = true;
    }
  }
  if (in_quotes)
    throw InvalidInputError(source + ": quoted field opened on line " + std::to_string(quote_line) +
                            " is never closed");
  if (!field.empty() || !record.empty() || field_quoted) end_record();
  if (records.empty()) throw InvalidInputError(source + ": table is empty (a header row is required)");

  CsvTable table;
  table.header = std::move(records.front());
  for (auto& h : table.header) h = trim(h);
  for (std::size_t r = 1; r < records.size(); ++r) {
    table.rows.push_back(std::move(records[r]));
    table.line_numbers.push_back(starts[r]);
  }
  return table;
}

CsvTable read_delimited_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw InvalidInputError(path.string() + ": file does not exist or is not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InvalidInputError(path.string() + ": file cannot be opened for reading");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  const char delimiter = path.extension() == ".tsv" ? '\t' : ',';
  return parse_delimited(buffer.str(), delimiter, path.string());
}

std::string csv_field(const std::string& value) {
  const bool needs_quotes = value.find_first_of(",\"\r\n") != std::string::npos ||
                            (!value.empty() && (value.front() == ' ' || value.back() == ' ' ||
                                                value.front() == '\t' || value.back() == '\t'));
  if (!needs_quotes) return value;
  std::string out = "\"";
  for (char c : value) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string csv_record(const std::vector<std::string>& fields) {
  std::string out;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i) out += ',';
    out += csv_field(fields[i]);
  }
  return out + "\n";
}

int column_index(const std::vector<std::string>& header, const std::string& name) {
  auto lower = [](std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
  };
  const std::string want = lower(name);
  for (std::size_t i = 0; i < header.size(); ++i)
    if (lower(header[i]) == want) return static_cast<int>(i);
  return -1;
}

}  // namespace brainage

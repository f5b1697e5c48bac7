#pragma once
// Delimited text tables (CSV and TSV) as researchers' spreadsheets write them: an optional
// UTF-8 byte-order mark, CRLF or LF line ends, quoted fields with embedded delimiters,
// quotes ("") and newlines. Used for cohort files, participants.tsv and predictions.csv.
#include <filesystem>
#include <string>
#include <vector>

namespace brainage {

struct CsvTable {
  std::vector<std::string> header;            // first record, cells trimmed
  std::vector<std::vector<std::string>> rows; // later records; blank lines skipped
  std::vector<std::size_t> line_numbers;      // 1-based line where each row starts (header = line 1)
};

/// Parses `text` with `delimiter` (',' or '\t'). Throws InvalidInputError naming `source`
/// when a quoted field is not closed or the text has no header.
CsvTable parse_delimited(const std::string& text, char delimiter, const std::string& source);

/// Reads and parses a file; the delimiter is '\t' for .tsv files and ',' otherwise.
/// Throws InvalidInputError naming the file when it is missing or unreadable.
CsvTable read_delimited_file(const std::filesystem::path& path);

/// One CSV field, quoted when it holds a comma, quote, CR, LF or surrounding spaces.
std::string csv_field(const std::string& value);
/// A CSV record (fields joined by commas, "\n" at the end).
std::string csv_record(const std::vector<std::string>& fields);

/// Index of `name` in `header` (case-insensitive), or -1.
int column_index(const std::vector<std::string>& header, const std::string& name);

/// `text` without leading/trailing spaces and tabs.
std::string trim(const std::string& text);

}  // namespace brainage

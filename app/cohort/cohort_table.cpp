#include "app/cohort/cohort_table.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <regex>
#include <set>
#include <stdexcept>

#include "common/csv.h"
#include "common/errors.h"

namespace brainage::cohort {
namespace fs = std::filesystem;

std::size_t Cohort::row_error_count() const {
  return static_cast<std::size_t>(
      std::count_if(subjects.begin(), subjects.end(), [](const Subject& s) { return !s.row_error.empty(); }));
}

std::optional<double> parse_age(const std::string& raw) {
  const std::string text = trim(raw);
  if (text.empty() || text == "n/a" || text == "NA" || text == "N/A") return std::nullopt;
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    throw std::invalid_argument("age '" + text + "' is not a number");
  }
  if (used != text.size()) throw std::invalid_argument("age '" + text + "' is not a number");
  if (!std::isfinite(value)) throw std::invalid_argument("age '" + text + "' is not finite");
  if (value < 0) throw std::invalid_argument("age " + text + " is negative");
  if (value >= 150) throw std::invalid_argument("age " + text + " is not a plausible age in years");
  return value;
}

namespace {

int find_column(const std::vector<std::string>& header, std::initializer_list<const char*> names) {
  for (const char* name : names)
    if (int i = column_index(header, name); i >= 0) return i;
  return -1;
}

std::string cell(const std::vector<std::string>& row, int index) {
  return index >= 0 && static_cast<std::size_t>(index) < row.size() ? row[static_cast<std::size_t>(index)]
                                                                     : std::string();
}

/// Marks later rows that repeat an earlier valid subject_id.
void mark_duplicates(Cohort& cohort) {
  std::map<std::string, std::size_t> first_row;
  for (auto& s : cohort.subjects) {
    if (s.id.empty()) continue;
    auto [it, inserted] = first_row.emplace(s.id, s.row);
    if (!inserted && s.row_error.empty())
      s.row_error = "duplicate subject_id '" + s.id + "' (first on cohort row " + std::to_string(it->second) + ")";
  }
}

}  // namespace

Cohort read_cohort_csv(const fs::path& csv_path) {
  const fs::path csv = fs::absolute(csv_path).lexically_normal();
  const CsvTable table = read_delimited_file(csv);
  const int id_col = find_column(table.header, {"subject_id", "participant_id", "subject", "id"});
  const int path_col = find_column(table.header, {"path", "t1", "scan", "file", "image", "t1w"});
  const int age_col = find_column(table.header, {"age"});
  const int sex_col = find_column(table.header, {"sex", "gender"});
  const int site_col = find_column(table.header, {"site", "scanner"});
  if (id_col < 0) throw InvalidInputError(csv.string() + ": no subject_id column (header: subject_id,path,age[,sex,site,...])");
  if (path_col < 0) throw InvalidInputError(csv.string() + ": no path column (header: subject_id,path,age[,sex,site,...])");
  if (age_col < 0) throw InvalidInputError(csv.string() + ": no age column (header: subject_id,path,age[,sex,site,...])");
  if (table.rows.empty()) throw InvalidInputError(csv.string() + ": cohort table has a header but no rows");

  Cohort cohort;
  cohort.source = csv;
  cohort.format = "csv";
  cohort.has_sex = sex_col >= 0;
  cohort.has_site = site_col >= 0;
  std::vector<int> extra_cols;
  for (int i = 0; i < static_cast<int>(table.header.size()); ++i) {
    if (i == id_col || i == path_col || i == age_col || i == sex_col || i == site_col) continue;
    extra_cols.push_back(i);
    cohort.extra_columns.push_back(table.header[static_cast<std::size_t>(i)]);
  }

  for (std::size_t r = 0; r < table.rows.size(); ++r) {
    const auto& row = table.rows[r];
    Subject s;
    s.row = r + 1;
    s.id = trim(cell(row, id_col));
    s.age_text = trim(cell(row, age_col));
    s.sex = trim(cell(row, sex_col));
    s.site = trim(cell(row, site_col));
    for (int c : extra_cols) s.extra.push_back(cell(row, c));
    const std::string path_text = trim(cell(row, path_col));
    if (!path_text.empty()) {
      fs::path p(path_text);
      s.scan = (p.is_absolute() ? p : csv.parent_path() / p).lexically_normal();
    }
    const std::string where = "line " + std::to_string(table.line_numbers[r]);
    if (row.size() != table.header.size())
      s.row_error = where + " has " + std::to_string(row.size()) + " fields, the header has " +
                    std::to_string(table.header.size());
    else if (s.id.empty())
      s.row_error = where + ": empty subject_id";
    else if (path_text.empty())
      s.row_error = where + ": empty path";
    if (s.row_error.empty()) {
      try {
        s.age = parse_age(s.age_text);
      } catch (const std::invalid_argument& e) {
        s.row_error = where + ": " + e.what();
      }
    }
    cohort.subjects.push_back(std::move(s));
  }
  mark_duplicates(cohort);
  return cohort;
}

namespace {

struct ParticipantInfo {
  std::string age, sex, site;
};

/// participant_id (with or without "sub-") -> columns of participants.tsv.
std::map<std::string, ParticipantInfo> read_participants(const fs::path& tsv) {
  std::map<std::string, ParticipantInfo> out;
  if (!fs::exists(tsv)) return out;
  const CsvTable table = read_delimited_file(tsv);
  const int id = find_column(table.header, {"participant_id", "subject_id"});
  if (id < 0) throw InvalidInputError(tsv.string() + ": no participant_id column");
  const int age = find_column(table.header, {"age"});
  const int sex = find_column(table.header, {"sex", "gender"});
  const int site = find_column(table.header, {"site", "scanner"});
  for (const auto& row : table.rows) {
    std::string key = trim(cell(row, id));
    if (key.rfind("sub-", 0) != 0) key = "sub-" + key;
    out[key] = {trim(cell(row, age)), trim(cell(row, sex)), trim(cell(row, site))};
  }
  return out;
}

/// ses-<label> -> age column of sub-<label>_sessions.tsv, when the file has one.
std::map<std::string, std::string> read_session_ages(const fs::path& subject_dir) {
  std::map<std::string, std::string> out;
  const fs::path tsv = subject_dir / (subject_dir.filename().string() + "_sessions.tsv");
  if (!fs::exists(tsv)) return out;
  const CsvTable table = read_delimited_file(tsv);
  const int id = find_column(table.header, {"session_id"});
  const int age = find_column(table.header, {"age"});
  if (id < 0 || age < 0) return out;
  for (const auto& row : table.rows) out[trim(cell(row, id))] = trim(cell(row, age));
  return out;
}

bool is_t1w_file(const fs::path& p) {
  static const std::regex kT1w(R"(.*_T1w\.nii(\.gz)?$)");
  return fs::is_regular_file(p) && std::regex_match(p.filename().string(), kT1w);
}

std::vector<fs::path> sorted_children(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory() && e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<fs::path> t1w_files(const fs::path& anat) {
  std::vector<fs::path> out;
  std::error_code ec;
  if (!fs::is_directory(anat, ec)) return out;
  for (const auto& e : fs::directory_iterator(anat, ec))
    if (is_t1w_file(e.path())) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

/// "sub-01_ses-02_run-1_T1w.nii.gz" -> "sub-01_ses-02_run-1".
std::string entity_prefix(const fs::path& file) {
  const std::string name = file.filename().string();
  return name.substr(0, name.rfind("_T1w"));
}

}  // namespace

Cohort read_bids_cohort(const fs::path& dir_path) {
  const fs::path dir = fs::absolute(dir_path).lexically_normal();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw InvalidInputError(dir.string() + ": BIDS dataset folder does not exist");
  const auto participants = read_participants(dir / "participants.tsv");

  Cohort cohort;
  cohort.source = dir;
  cohort.format = "bids";
  cohort.extra_columns = {"session"};
  for (const auto& [id, info] : participants) {
    cohort.has_sex = cohort.has_sex || !info.sex.empty();
    cohort.has_site = cohort.has_site || !info.site.empty();
  }

  for (const fs::path& sub : sorted_children(dir, "sub-")) {
    const std::string sub_id = sub.filename().string();
    const auto session_ages = read_session_ages(sub);
    std::vector<std::pair<std::string, fs::path>> scans;  // session, file
    for (const fs::path& f : t1w_files(sub / "anat")) scans.emplace_back("", f);
    for (const fs::path& ses : sorted_children(sub, "ses-"))
      for (const fs::path& f : t1w_files(ses / "anat")) scans.emplace_back(ses.filename().string(), f);
    // Several T1s in one folder (runs, acquisitions) get their full entity prefix as id.
    std::map<std::string, int> per_session;
    for (const auto& [ses, f] : scans) ++per_session[ses];

    const auto it = participants.find(sub_id);
    for (const auto& [ses, file] : scans) {
      Subject s;
      s.row = cohort.subjects.size() + 1;
      s.scan = file;
      s.id = per_session[ses] > 1 ? entity_prefix(file) : (ses.empty() ? sub_id : sub_id + "_" + ses);
      s.extra = {ses};
      if (it != participants.end()) {
        s.age_text = it->second.age;
        s.sex = it->second.sex;
        s.site = it->second.site;
      }
      if (auto a = session_ages.find(ses); a != session_ages.end() && !a->second.empty()) s.age_text = a->second;
      try {
        s.age = parse_age(s.age_text);
      } catch (const std::invalid_argument& e) {
        s.row_error = sub_id + ": " + e.what() + " (participants.tsv)";
      }
      cohort.subjects.push_back(std::move(s));
    }
  }
  if (cohort.subjects.empty())
    throw InvalidInputError(dir.string() + ": no sub-*/[ses-*/]anat/*_T1w.nii[.gz] files (not a BIDS dataset?)");
  mark_duplicates(cohort);
  return cohort;
}

Cohort load_cohort(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return read_bids_cohort(path);
  return read_cohort_csv(path);
}

}  // namespace brainage::cohort

#pragma once
// A cohort: the subjects to evaluate, read from a CSV table or a BIDS dataset.
//
// CSV: one row per scan with the columns subject_id, path (aliases: t1, scan, file, image)
// and age; sex and site are optional; every other column is carried through to
// predictions.csv. Relative paths are resolved against the CSV's folder. A row that
// breaks a rule (empty or duplicate subject_id, empty path, non-numeric, negative or
// non-finite age) is kept with its reason in `row_error`: it is reported, not processed.
// An empty age is allowed (the subject is predicted but left out of the metrics).
//
// BIDS: sub-<label>/[ses-<label>/]anat/*_T1w.nii[.gz]; one subject per T1 file (id
// "sub-01", or "sub-01_ses-02" with sessions, plus "_run-N" etc. when a folder holds
// several T1s); ages, sex and site from participants.tsv (column age; sex; site or
// scanner), with a sessions file's age column taking precedence where present.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace brainage::cohort {

struct Subject {
  std::size_t row = 0;             // 1-based position in the cohort (file order)
  std::string id;                  // unique among valid rows
  std::filesystem::path scan;      // absolute path of the T1
  std::optional<double> age;       // chronological age in years, when given
  std::string age_text;            // the age cell as written (for rows with errors)
  std::string sex;                 // as given ("" when absent)
  std::string site;                // as given ("" when absent)
  std::vector<std::string> extra;  // values of Cohort::extra_columns, in order
  std::string row_error;           // why this row is not processed ("" for a valid row)
};

struct Cohort {
  std::filesystem::path source;            // the CSV file or BIDS folder (absolute)
  std::string format;                      // "csv" or "bids"
  std::vector<std::string> extra_columns;  // carried-through column names
  bool has_sex = false;
  bool has_site = false;
  std::vector<Subject> subjects;           // every row, in file order (row = index + 1)

  std::size_t row_error_count() const;
};

/// Reads a cohort CSV (or TSV). Throws InvalidInputError naming the file for a missing
/// file, a missing required column, or a table without rows.
Cohort read_cohort_csv(const std::filesystem::path& csv);

/// Reads a BIDS dataset. Throws InvalidInputError naming the folder when it holds no
/// sub-*/[ses-*/]anat/*_T1w.nii[.gz].
Cohort read_bids_cohort(const std::filesystem::path& dir);

/// A folder is read as BIDS, a file as a CSV/TSV table.
Cohort load_cohort(const std::filesystem::path& path);

/// Parses an age cell: a finite, non-negative number below 150. nullopt for "" / "n/a";
/// throws std::invalid_argument with the reason otherwise.
std::optional<double> parse_age(const std::string& text);

}  // namespace brainage::cohort

#include "app/cohort/cohort_runner.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <mutex>
#include <thread>

#include "app/cohort/journal.h"
#include "common/progress_bar.h"
#include "common/atomic_file.h"
#include "common/errors.h"

namespace brainage::cohort {
namespace fs = std::filesystem;

bool subject_in_shard(const Subject& subject, const ShardSpec& shard) {
  if (!shard.active()) return true;
  return in_shard(subject.id.empty() ? "#row" + std::to_string(subject.row) : subject.id, shard);
}

namespace {

SubjectRecord run_one(const Subject& subject, const fs::path& subjects_dir, const std::string& processing_key,
                      const SubjectProcessor& process) {
  SubjectRecord r;
  r.subject_id = subject.id;
  r.row = subject.row;
  r.scan = subject.scan.string();
  r.scan_signature = scan_signature(subject.scan);
  r.processing_key = processing_key;
  const auto start = std::chrono::steady_clock::now();
  const SubjectWorkspace ws{subjects_dir / safe_name(subject.id)};
  try {
    ensure_writable_directory(ws.dir);
    SubjectOutcome outcome = process(subject, ws);
    if (!std::isfinite(outcome.predicted_age))
      throw ProcessingError(subject.scan.string() + ": prediction is not a finite number");
    r.ok = true;
    r.predicted_age = outcome.predicted_age;
    r.age_sd_years = outcome.age_sd_years;
    r.qc_flags = std::move(outcome.qc_flags);
    r.qc_image = outcome.qc_image.empty() ? std::string() : fs::absolute(outcome.qc_image).string();
    r.details = std::move(outcome.details);
  } catch (const Error& e) {
    r.error = std::string(e.kind()) + ": " + e.what();
    r.error_code = static_cast<int>(e.code());
  } catch (const std::bad_alloc&) {
    r.error = "OutOfMemory: not enough memory for this scan (lower --jobs)";
    r.error_code = static_cast<int>(ExitCode::kInternal);
  } catch (const std::exception& e) {
    r.error = std::string("InternalError: ") + e.what();
    r.error_code = static_cast<int>(ExitCode::kInternal);
  }
  // A subject that wrote nothing (no --maps, no QC image) leaves no empty folder behind.
  std::error_code ignored;
  if (fs::is_directory(ws.dir, ignored) && fs::is_empty(ws.dir, ignored)) fs::remove(ws.dir, ignored);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace

RunSummary run_cohort(const Cohort& cohort, const RunOptions& options, const SubjectProcessor& process) {
  const auto start = std::chrono::steady_clock::now();
  ensure_writable_directory(options.out_dir);
  const Journal journal(options.out_dir / "journal");
  const fs::path subjects_dir = options.out_dir / "subjects";
  auto done = journal.read_all();

  RunSummary summary;
  std::vector<const Subject*> todo;
  std::vector<std::size_t> slot_of_todo;
  for (const Subject& s : cohort.subjects) {
    if (!s.row_error.empty() || !subject_in_shard(s, options.shard)) continue;
    const auto it = done.find(s.id);
    const bool same_processing = it != done.end() && it->second.processing_key == options.processing_key;
    if (it != done.end() && !same_processing) ++summary.stale;
    const bool usable = same_processing && it->second.scan == s.scan.string() &&
                        it->second.scan_signature == scan_signature(s.scan) &&
                        (it->second.ok || !options.retry_failed);
    if (usable) {
      SubjectRecord r = it->second;
      r.row = s.row;  // rows may have been reordered in the cohort file
      summary.records.push_back(std::move(r));
      ++summary.resumed;
    } else {
      summary.records.emplace_back();
      todo.push_back(&s);
      slot_of_todo.push_back(summary.records.size() - 1);
    }
  }

  std::ostream& stream = options.progress_stream ? *options.progress_stream : std::cerr;
  ProgressBar progress(todo.size(), options.show_progress, stream, options.progress_interactive);
  std::atomic<std::size_t> next{0};
  std::mutex fatal_mutex;
  std::exception_ptr fatal;  // a journal that cannot be written stops the run
  auto worker = [&] {
    for (std::size_t i = next++; i < todo.size(); i = next++) {
      SubjectRecord r = run_one(*todo[i], subjects_dir, options.processing_key, process);
      try {
        journal.write(r);
      } catch (...) {
        std::lock_guard<std::mutex> lock(fatal_mutex);
        if (!fatal) fatal = std::current_exception();
        next = todo.size();
        return;
      }
      progress.tick(r.subject_id, !r.ok);
      summary.records[slot_of_todo[i]] = std::move(r);
    }
  };
  const int jobs = std::max(1, std::min<int>(options.jobs, static_cast<int>(std::max<std::size_t>(1, todo.size()))));
  std::vector<std::thread> threads;
  for (int j = 1; j < jobs; ++j) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  progress.finish();
  if (fatal) std::rethrow_exception(fatal);

  std::error_code ignored;
  if (fs::is_directory(subjects_dir, ignored) && fs::is_empty(subjects_dir, ignored)) fs::remove(subjects_dir, ignored);
  summary.processed = todo.size();
  for (const auto& r : summary.records)
    if (!r.ok) ++summary.failed;
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace brainage::cohort

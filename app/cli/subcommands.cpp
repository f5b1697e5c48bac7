// The registry of `brainage` subcommands. Add one line per subcommand.
#include "app/cli/cli.h"
#include "app/cli/ensemble_command.h"
#include "app/cli/evaluate_command.h"
#include "app/cli/info_command.h"
#include "app/cli/merge_command.h"
#include "app/cli/predict_command.h"
#include "app/cli/train_command.h"
#include "app/cli/preprocess_command.h"
#include "app/cli/visualize_command.h"

namespace brainage::app {

const std::vector<Subcommand>& subcommands() {
  static const std::vector<Subcommand> kAll = {
      {"info", "print a scan's size, spacing, orientation, datatype and intensity range", info_main},
      {"preprocess", "N4, registration to Colin27, brain mask, model-grid T1, tissue classes, QC (one scan)",
       preprocess_main},
      {"predict", "predict the brain age of one scan (preprocessing + model); -o DIR keeps the outputs", predict_main},
      {"train", "train the model on a manifest (subject_id, age, path); checkpoints every epoch, --resume", train_main},
      {"ensemble", "assemble member training folders (one K-fold partition) into a calibrated ensemble checkpoint",
       ensemble_main},
      {"evaluate", "a cohort (CSV or BIDS): predictions, metrics, plots, report; resumable, --jobs, --shard", evaluate_main},
      {"visualize", "expert maps of a prediction: NIfTI label maps, colour tables, region tables, figures",
       visualize_main},
      {"merge", "combine the outputs of evaluate --shard i/N runs and recompute the metrics", merge_main},
  };
  return kAll;
}

}  // namespace brainage::app

#include "viz/expert_maps.h"

#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/errors.h"
#include "preprocessing/native_header.h"
#include "preprocessing/scan_reader.h"
#include "viz/colour_tables.h"
#include "viz/label_painter.h"
#include "viz/native_space.h"
#include "viz/region_table.h"

namespace brainage::viz {

namespace fs = std::filesystem;

namespace {
nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw InvalidInputError(path.string() + ": prediction record not found (is this a prediction folder?)");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw InvalidInputError(path.string() + ": not valid JSON (" + e.what() + ")");
  }
}

std::vector<double> shares(const std::vector<std::size_t>& counts) {
  double total = 0.0;
  for (auto c : counts) total += static_cast<double>(c);
  std::vector<double> s;
  for (auto c : counts) s.push_back(total > 0 ? static_cast<double>(c) / total : 0.0);
  return s;
}
}  // namespace

MapsReport render_expert_maps(const MapsOptions& opt) {
  const fs::path in = opt.prediction_dir;
  if (!fs::is_directory(in)) throw InvalidInputError(in.string() + ": not a prediction folder (not a directory)");
  const fs::path out = opt.output_dir.empty() ? in : opt.output_dir;
  ensure_writable_directory(out);
  MapsReport report;

  const nlohmann::json prediction = read_json(in / "prediction.json");
  if (!prediction.contains("routing"))
    throw InvalidInputError((in / "prediction.json").string() + ": no \"routing\" block (written by brainage predict?)");
  const RoutingSummary routing = parse_routing(prediction["routing"], (in / "prediction.json").string());
  check_palette_fits(routing.num_experts, (in / "prediction.json").string());
  const auto anatomy = read_float_volume(in / "t1_mni2mm.nii.gz");
  const auto mask = read_label_volume(in / "brain_mask_mni2mm.nii.gz");
  require_same_grid(mask, "brain_mask_mni2mm.nii.gz", anatomy, (in / "t1_mni2mm.nii.gz").string());

  auto emit = [&](const fs::path& p) { report.files.push_back(p); };

  // Model-grid maps: summary + each layer.
  const RoutingLayer summary = summarise_layers(routing);
  const PaintedLayer painted = paint_layer(routing, summary, mask);
  write_volume(painted.labels, out / "experts_mni2mm.nii.gz");
  emit(out / "experts_mni2mm.nii.gz");
  write_volume(painted.scores, out / "experts_score_mni2mm.nii.gz");
  emit(out / "experts_score_mni2mm.nii.gz");
  std::vector<PaintedLayer> layers;
  for (const auto& l : routing.layers) {
    layers.push_back(paint_layer(routing, l, mask));
    if (opt.per_layer_maps) {
      const fs::path p = out / ("experts_mni2mm_layer" + std::to_string(l.layer) + ".nii.gz");
      write_volume(layers.back().labels, p);
      emit(p);
    }
  }
  for (const auto& p : write_colour_tables(out, routing.num_experts)) emit(p);

  // Native space.
  const auto transform = read_mni_to_native_transform(in / "native_to_mni.tfm");
  itk::ImageBase<3>::Pointer reference;
  std::string reference_name;
  const std::string scan = prediction.value("scan", std::string());
  if (!scan.empty() && fs::exists(scan)) {
    preprocessing::ScanValidationOptions validation;
    validation.allow_multivolume = true;
    reference = preprocessing::load_scan(scan, validation).image.GetPointer();
    reference_name = scan;
  } else if (fs::exists(in / "brain_mask_native.nii.gz")) {
    // load_scan places it by its (the input's) sform/qform and keeps that header.
    reference = preprocessing::load_scan(in / "brain_mask_native.nii.gz").image.GetPointer();
    reference_name = (in / "brain_mask_native.nii.gz").string();
    report.warnings.push_back("scan " + (scan.empty() ? std::string("(not recorded)") : scan) +
                              " not found: native geometry taken from brain_mask_native.nii.gz");
  } else {
    throw InvalidInputError(in.string() + ": neither the scan named in prediction.json nor brain_mask_native.nii.gz "
                                          "exists, so the native geometry is unknown");
  }
  // Written with the input's qform and sform (preprocessing/native_header.h).
  preprocessing::write_like_input(labels_to_native(painted.labels, transform, reference), out / "experts_native.nii.gz",
                                  reference);
  emit(out / "experts_native.nii.gz");
  preprocessing::write_like_input(scores_to_native(painted.scores, transform, reference),
                                  out / "experts_score_native.nii.gz", reference);
  emit(out / "experts_score_native.nii.gz");

  // Tables.
  const CategoryMap atlas = load_atlas_on_grid(opt.atlas, opt.atlas_names, mask);
  CategoryMap tissue;
  const bool have_tissue = fs::exists(in / "tissue_mni2mm.nii.gz");
  if (have_tissue) {
    const auto t = read_label_volume(in / "tissue_mni2mm.nii.gz");
    require_same_grid(mask, "brain_mask_mni2mm.nii.gz", t, (in / "tissue_mni2mm.nii.gz").string());
    tissue = tissue_categories(t);
  } else {
    report.warnings.push_back("tissue_mni2mm.nii.gz missing: no tissue table");
  }
  std::vector<LayerTable> region_rows, tissue_rows;
  std::vector<const RoutingLayer*> all = {&summary};
  std::vector<const PaintedLayer*> all_painted = {&painted};
  for (std::size_t i = 0; i < routing.layers.size(); ++i) {
    all.push_back(&routing.layers[i]);
    all_painted.push_back(&layers[i]);
  }
  std::string spec_csv = "layer,nmi_region,nmi_tissue,brain_voxels\n";
  for (std::size_t i = 0; i < all.size(); ++i) {
    const std::string name = i == 0 ? "summary" : std::to_string(all[i]->layer);
    const auto tokens = brain_tokens_per_expert(routing, *all[i], mask);
    if (i == 0) report.token_share = shares(tokens);
    LayerTable rt{name, cross_tabulate(all_painted[i]->labels, atlas, routing.num_experts), tokens};
    LayerSpecialisation spec{name, normalised_mutual_information(rt.counts), 0.0};
    double voxels = 0.0;
    for (const auto& row : rt.counts)
      for (double v : row) voxels += v;
    region_rows.push_back(std::move(rt));
    if (have_tissue) {
      LayerTable tt{name, cross_tabulate(all_painted[i]->labels, tissue, routing.num_experts), tokens};
      spec.nmi_tissue = normalised_mutual_information(tt.counts);
      tissue_rows.push_back(std::move(tt));
    }
    char line[160];
    std::snprintf(line, sizeof line, "%s,%.6f,%s,%.0f\n", name.c_str(), spec.nmi_region,
                  have_tissue ? std::to_string(spec.nmi_tissue).c_str() : "", voxels);
    spec_csv += line;
    report.specialisation.push_back(spec);
  }
  write_file_atomic(out / "expert_regions.csv", share_csv(region_rows, atlas));
  emit(out / "expert_regions.csv");
  if (have_tissue) {
    write_file_atomic(out / "expert_tissues.csv", share_csv(tissue_rows, tissue));
    emit(out / "expert_tissues.csv");
  }
  write_file_atomic(out / "specialisation.csv", spec_csv);
  emit(out / "specialisation.csv");

  // Figures: the summary, or the requested layer.
  std::size_t shown = 0;  // index into `all`
  for (std::size_t i = 1; i < all.size() && opt.figure_layer != 0; ++i)
    if (all[i]->layer == opt.figure_layer) shown = i;
  if (opt.figure_layer != 0 && shown == 0)
    throw UsageError((in / "prediction.json").string() + ": no MoE layer " + std::to_string(opt.figure_layer) +
                     " in the routing record");
  ExpertOverlay overlay;
  overlay.anatomy = anatomy;
  overlay.brain_mask = mask;
  overlay.labels = all_painted[shown]->labels;
  overlay.num_experts = routing.num_experts;
  overlay.token_share = shares(brain_tokens_per_expert(routing, *all[shown], mask));
  const double patch_mm = routing.patch_size * mask->GetSpacing()[0];
  overlay.title = shown == 0 ? "Expert territories (top-1 routing, majority over " +
                                   std::to_string(routing.layers.size()) + " MoE layer" +
                                   (routing.layers.size() == 1 ? "" : "s") + ")"
                             : "Expert territories (top-1 routing, MoE layer " + std::to_string(all[shown]->layer) + ")";
  char sub[512];
  std::snprintf(sub, sizeof sub, "%s  |  %d experts, top-%d, %.0f mm patches  |  NMI(expert; AAL region) = %.3f",
                scan.empty() ? in.filename().c_str() : fs::path(scan).filename().c_str(), routing.num_experts,
                routing.top_k, patch_mm, report.specialisation[shown].nmi_region);
  overlay.subtitle = sub;
  if (prediction.contains("predicted_age") && prediction["predicted_age"].is_number()) {
    char age[64];
    std::snprintf(age, sizeof age, "  |  predicted age %.1f y", prediction["predicted_age"].get<double>());
    overlay.subtitle += age;
  }
  if (opt.render_2d) {
    render_ortho_figure(overlay, opt.ortho, out / "experts_ortho.png");
    emit(out / "experts_ortho.png");
    render_mosaic_figure(overlay, opt.mosaic, out / "experts_mosaic.png");
    emit(out / "experts_mosaic.png");
  }
  if (opt.render_3d) {
    if (display_available()) {
      render_surface_figure(overlay, opt.surface, out / "experts_3d.png");
      emit(out / "experts_3d.png");
    } else {
      report.warnings.push_back("no X display could be opened or started (install xvfb): experts_3d.png skipped");
    }
  }

  // Manifest.
  nlohmann::json m;
  m["prediction_dir"] = fs::absolute(in).string();
  m["summary_rule"] =
      "per token, the top-1 expert chosen by the most MoE layers; ties go to the deepest tied layer; "
      "score = mean top-1 score of the layers that chose it";
  m["label_values"] = "0 = outside the brain mask, k = Expert k (prediction.json expert index k-1)";
  m["native_reference"] = reference_name;
  m["num_experts"] = routing.num_experts;
  m["figures_show"] = shown == 0 ? std::string("summary") : "layer " + std::to_string(all[shown]->layer);
  m["token_share"] = report.token_share;
  for (const auto& s : report.specialisation)
    m["specialisation"].push_back({{"layer", s.layer}, {"nmi_region", s.nmi_region}, {"nmi_tissue", s.nmi_tissue}});
  for (const auto& f : report.files) m["files"].push_back(f.filename().string());
  m["warnings"] = report.warnings;
  write_file_atomic(out / "maps.json", m.dump(2) + "\n");
  emit(out / "maps.json");
  return report;
}

}  // namespace brainage::viz

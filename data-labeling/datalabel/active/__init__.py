"""Active learning: splits, pre-annotations, uncertainty sampling, a baseline model, and the offline simulation.

The loop: a model pre-annotates the train split (predictions whose score is a certainty, with a model version,
uploaded in bulk), the project's queue serves the least certain task first (Label Studio's Uncertainty sampling
over that version; a saved Data Manager view shows the top K), the model retrains on the new labels, repeat. The
same `select` function ranks tasks for Label Studio and for the offline simulation, so the learning curves measure
exactly what the command does.

One module per concern, each importing only those before it in this list:
  scoring      the maths (pure): uncertainty, certainty, select
  project      the project in Label Studio: tasks, prediction target, queue, views, task locks, model versions
  splits       train / valid / test: a hash of the image URL, stored in the task data
  images       image bytes to features: bucket or Label Studio only, size- and time-capped, in parallel
  interface    the model interface (Classifier) and the pixel model, its default implementation
  model        model versions: train on a project, save, load, retire (files and their predictions)
  predictions  prediction JSON, prediction files, bulk upload (preannotate)
  selection    rank a project's unlabeled pool (select_tasks)
  simulation   learning curves offline, and their report
Tasks are read through the shared model in `tasks.py`; Label Studio is reached only through `ls`.
"""
from .images import MAX_IMAGE_BYTES, PIXELS, ImageLoader, ImageRefused, pixels
from .interface import Classifier, LogisticPixels, classifier_class, fit
from .model import (MODEL_PREFIX, ModelVersion, labeled_examples, labels_digest, list_versions, load_model,
                    model_dir, model_path, prune_models, retire_versions, save_model, train_project)
from .predictions import (PredictionRow, create_predictions_one_by_one, import_predictions, latest_prediction,
                          preannotate, predict_tasks, prediction_json, prediction_probs, read_prediction_file,
                          rows_to_predictions)
from .project import (DEFAULT_VIEW, UNCERTAINTY_SAMPLING, Target, delete_model_version, find_view, load_tasks,
                      load_tasks_by_id, project_target, release_locks, save_view, target_of,
                      use_for_sampling, view_task_ids)
from .selection import Candidate, refresh_view, select_tasks
from .simulation import Simulation, load_digit_features, simulate, write_report
from .splits import (SPLIT_FIELD, SPLITS, assign_splits, check_split, in_split, media_url, plan_splits, split_of,
                     stable_key, stored_split, task_split, write_splits_one_by_one)
from .scoring import SCORE_STRATEGIES, STRATEGIES, certainty, select, uncertainty

__all__ = ["assign_splits", "Candidate", "certainty", "check_split", "Classifier", "classifier_class",
    "create_predictions_one_by_one", "DEFAULT_VIEW", "delete_model_version", "find_view", "fit", "ImageRefused",
    "LogisticPixels", "MAX_IMAGE_BYTES", "ModelVersion", "release_locks", "retire_versions", "ImageLoader", "import_predictions", "in_split", "labeled_examples", "labels_digest", "latest_prediction",
    "list_versions", "load_digit_features", "load_model", "load_tasks", "load_tasks_by_id", "media_url", "model_dir",
    "model_path", "MODEL_PREFIX", "PIXELS", "pixels", "plan_splits", "preannotate", "predict_tasks",
    "prediction_json", "prediction_probs", "PredictionRow", "project_target",
    "prune_models", "read_prediction_file", "refresh_view", "rows_to_predictions", "save_model", "save_view", "SCORE_STRATEGIES",
    "select", "select_tasks", "simulate", "Simulation", "SPLIT_FIELD", "split_of", "SPLITS", "stable_key",
    "stored_split", "STRATEGIES", "Target", "target_of", "task_split", "train_project", "uncertainty",
    "UNCERTAINTY_SAMPLING", "use_for_sampling", "view_task_ids", "write_report", "write_splits_one_by_one"]

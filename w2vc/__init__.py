"""w2vc: Wav2Vec2-Conformer in PyTorch, built chapter by chapter in an executable book.

This file is written by hand; every other module in the package is generated from a chapter's
notebook by ``tools/export.py`` (its first line names the notebook). Public names are imported
lazily, so ``import w2vc`` stays cheap and ``from w2vc import Wav2Vec2ConformerModel`` works.
"""
from importlib import import_module

__version__ = "0.1.0"

# public name -> module of w2vc that defines it
_EXPORTS = {
    # chapter 1: audio and the synthesized corpus
    "load_audio": "audio",
    "save_audio": "audio",
    "resample": "audio",
    "check_waveform": "audio",
    "spectrogram": "audio",
    "plot_waveform": "audio",
    "plot_spectrogram": "audio",
    "play": "audio",
    "Wav2Vec2FeatureExtractor": "audio",
    "BatchFeatures": "audio",
    "needs_attention_mask": "audio",
    "zero_mean_unit_var": "audio",
    "SAMPLING_RATE": "audio",
    "RECEPTIVE_FIELD": "audio",
    "FRAME_STRIDE": "audio",
    "synthesize": "data",
    "load_corpus": "data",
    "load_folder": "data",
    "save_folder": "data",
    "Corpus": "data",
    "Utterance": "data",
    "Word": "data",
    "cache_dir": "data",
    "check_voice": "data",
    # chapter 2: the config and the feature encoder
    "Wav2Vec2ConformerConfig": "config",
    "get_activation": "config",
    "Wav2Vec2ConformerFeatureEncoder": "features",
    "Wav2Vec2ConformerFeatureProjection": "features",
    "Wav2Vec2ConformerConvLayer": "features",
    "feature_output_lengths": "features",
    "receptive_field": "features",
    # chapter 3: masking
    "compute_mask_indices": "masking",
    "apply_spec_augment": "masking",
    "expected_masked_fraction": "masking",
    # chapter 4: positions
    "Wav2Vec2ConformerRelPositionalEmbedding": "positions",
    "Wav2Vec2ConformerRotaryPositionalEmbedding": "positions",
    "relative_position_table": "positions",
    "relative_shift": "positions",
    "apply_rotary": "positions",
    # chapter 5: attention and the conformer block
    "Wav2Vec2ConformerEncoder": "conformer",
    "Wav2Vec2ConformerEncoderLayer": "conformer",
    "Wav2Vec2ConformerSelfAttention": "conformer",
    "Wav2Vec2ConformerFeedForward": "conformer",
    "Wav2Vec2ConformerConvolutionModule": "conformer",
    "Wav2Vec2ConformerPositionalConvEmbedding": "conformer",
    # chapter 6: the model
    "Wav2Vec2ConformerModel": "model",
    "Wav2Vec2ConformerPreTrainedModel": "model",
    "Wav2Vec2ConformerBaseModelOutput": "model",
    "Wav2Vec2ConformerAdapter": "model",
    "Wav2Vec2ConformerAdapterLayer": "model",
    "read_state_dict": "model",
    # chapter 7: quantization
    "Wav2Vec2ConformerGumbelVectorQuantizer": "quantizer",
    "gumbel_noise": "quantizer",
    "gumbel_softmax_straight_through": "quantizer",
    "codevector_perplexity": "quantizer",
    # chapter 8: pretraining, and the training loop of chapters 8-11
    "sample_negative_indices": "pretraining",
    "compute_contrastive_logits": "pretraining",
    "contrastive_logits": "pretraining",
    "pretraining_losses": "pretraining",
    "Wav2Vec2ConformerForPreTraining": "pretraining",
    "Wav2Vec2ConformerForPreTrainingOutput": "pretraining",
    "PretrainingCollator": "pretraining",
    "pretraining_step": "pretraining",
    "gumbel_temperature_schedule": "pretraining",
    "contrastive_accuracy": "pretraining",
    "PretrainingRecipe": "pretraining",
    "pretrain": "pretraining",
    "pretrained_tiny": "pretraining",
    "train": "training",
    "TrainingConfig": "training",
    "History": "training",
    "sharded_batches": "training",
    "lr_factor": "training",
    "make_optimizer": "training",
    "init_distributed": "training",
    "default_device": "training",
    "unwrap": "training",
    "move_to": "training",
    "seed_everything": "training",
    "save_checkpoint": "training",
    "load_checkpoint": "training",
    # chapter 9: speech recognition with CTC
    "CTCTokenizer": "tokenizer",
    "Wav2Vec2CTCTokenizer": "tokenizer",
    "Wav2Vec2Processor": "processor",
    "Wav2Vec2ConformerForCTC": "ctc",
    "CTCOutput": "ctc",
    "ctc_loss": "ctc",
    "ctc_min_frames": "ctc",
    "ctc_greedy_decode": "decoding",
    "ctc_prefix_beam_search": "decoding",
    "ctc_beam_search_decode": "decoding",
    "ctc_forced_align": "decoding",
    "edit_distance": "metrics",
    "word_error_rate": "metrics",
    "char_error_rate": "metrics",
    "CTCCollator": "ctc_training",
    "length_sorted_batches": "ctc_training",
    "ctc_training_step": "ctc_training",
    "evaluate_recognizer": "ctc_training",
    "ctc_experiment": "ctc_training",
    "unseen_voice_test_set": "ctc_training",
    "load_recognizer": "recognizer",
    "frame_logits": "recognizer",
    "chunk_windows": "recognizer",
    "transcribe": "recognizer",
    "check_device": "recognizer",
    "check_dtype": "recognizer",
    "rms_db": "recognizer",
    # chapter 12: after the course
    "transcribe_files": "cli",
    "finetune_ctc": "finetune",
    "finetune_classify": "finetune",
    "evaluate_classifier": "finetune",
    "load_fairseq_checkpoint": "fairseq",
    "convert_fairseq": "fairseq",
    "read_fairseq_dictionary": "fairseq",
    "export_onnx": "onnx_export",
    "run_onnx": "onnx_export",
    "check_onnx": "onnx_export",
    # chapter 10: utterance and frame classification
    "Wav2Vec2ConformerForSequenceClassification": "classification",
    "Wav2Vec2ConformerForAudioFrameClassification": "classification",
    "Wav2Vec2ConformerWithHead": "classification",
    "ClassifierOutput": "classification",
    "weighted_layer_sum": "classification",
    "masked_mean": "classification",
    "check_class_labels": "classification",
    "frame_labels_from_words": "classification",
    "collect_hidden_states": "classification",
    "pad_hidden_states": "classification",
    # chapter 11: x-vector speaker embeddings
    "Wav2Vec2ConformerForXVector": "xvector",
    "XVectorOutput": "xvector",
    "TDNNLayer": "xvector",
    "statistics_pooling": "xvector",
    "AMSoftmaxLoss": "xvector",
    "cosine_scores": "xvector",
    "all_trials": "xvector",
    "det_curve": "xvector",
    "equal_error_rate": "xvector",
    # chapter 13: making it fast
    "attention_forward": "attention",
    "relative_attention_blocked": "attention",
    "sdpa_attention": "attention",
    "check_attn_implementation": "attention",
    "ATTN_IMPLEMENTATIONS": "attention",
    "AllocationLog": "attention",
}


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'w2vc' has no attribute {name!r}")
    value = getattr(import_module(f"w2vc.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = sorted(_EXPORTS)

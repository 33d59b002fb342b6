"""Wav2Vec2ConformerConfig: transformers' names and defaults, config.json both ways, clear errors."""
import dataclasses
import json

import pytest
import torch
import transformers
from transformers.activations import ACT2FN

from w2vc.config import ACTIVATIONS, PRESETS, Wav2Vec2ConformerConfig, get_activation

HF = transformers.Wav2Vec2ConformerConfig
# entries of transformers' to_dict that describe transformers, not the model
HF_GENERIC = {"transformers_version", "architectures", "output_hidden_states", "return_dict", "dtype",
              "chunk_size_feed_forward", "is_encoder_decoder", "problem_type", "_name_or_path",
              "output_attentions"}


def _model_entries(d):
    d = {k: v for k, v in d.items() if k not in HF_GENERIC}
    d["id2label"] = {int(k): v for k, v in d["id2label"].items()}
    return d


def test_every_transformers_field_has_the_same_name_and_default():
    hf = _model_entries(HF().to_dict())
    ours = _model_entries(Wav2Vec2ConformerConfig().to_dict())
    assert set(hf) == set(ours), (set(hf) ^ set(ours))
    for key in hf:
        assert ours[key] == hf[key], (key, ours[key], hf[key])
    names = {f.name for f in dataclasses.fields(Wav2Vec2ConformerConfig)}
    assert {"num_labels", "id2label", "label2id"} <= names
    assert Wav2Vec2ConformerConfig().num_labels == HF().num_labels == 2


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_load_in_transformers_with_the_same_values(tmp_path, name):
    ours = Wav2Vec2ConformerConfig.preset(name, id2label={0: "yes", 1: "no", 2: "maybe"})
    ours.save_pretrained(tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    assert raw["model_type"] == "wav2vec2-conformer"
    hf = HF.from_pretrained(tmp_path)
    assert _model_entries(hf.to_dict()) == _model_entries(ours.to_dict())
    assert hf.num_labels == 3 and hf.label2id == {"yes": 0, "no": 1, "maybe": 2}


def test_config_json_written_by_transformers_loads(tmp_path):
    hf = HF(hidden_size=64, num_attention_heads=4, num_labels=5, vocab_size=40, conv_dim=[32, 32],
            conv_kernel=[10, 3], conv_stride=[5, 2], position_embeddings_type=None, add_adapter=True,
            output_hidden_size=32)
    hf.save_pretrained(tmp_path)
    ours = Wav2Vec2ConformerConfig.from_pretrained(tmp_path)
    assert _model_entries(ours.to_dict()) == _model_entries(hf.to_dict())
    assert ours.num_labels == 5 and ours.conv_dim == (32, 32) and ours.position_embeddings_type is None
    assert ours.extra == {}  # transformers' own keys are dropped, not kept as unknown
    assert Wav2Vec2ConformerConfig.from_pretrained(tmp_path / "config.json") == ours
    assert Wav2Vec2ConformerConfig.from_pretrained(tmp_path, hidden_size=128).hidden_size == 128


def test_published_large_rope_config_reads_with_its_old_keys(tmp_path):
    # the layout of facebook/wav2vec2-conformer-rope-large-960h-ft (transformers 4.x), with keys we do not use
    published = {**Wav2Vec2ConformerConfig.preset("large-rope").to_dict(),
                 "architectures": ["Wav2Vec2ConformerForCTC"], "do_stable_layer_norm": True,
                 "feat_extract_dropout": 0.0, "hidden_dropout_prob": 0.1, "torch_dtype": "float32",
                 "transformers_version": "4.19.0.dev0", "gradient_checkpointing": False}
    (tmp_path / "config.json").write_text(json.dumps(published))
    config = Wav2Vec2ConformerConfig.from_pretrained(tmp_path)
    assert config.hidden_act == "swish" and config.num_hidden_layers == 24 and config.hidden_size == 1024
    assert config.extra == {"do_stable_layer_norm": True, "feat_extract_dropout": 0.0, "hidden_dropout_prob": 0.1}
    config.save_pretrained(tmp_path / "again")
    again = json.loads((tmp_path / "again" / "config.json").read_text())
    assert again["do_stable_layer_norm"] is True and "torch_dtype" not in again


def test_round_trip_keeps_everything(tmp_path):
    config = Wav2Vec2ConformerConfig.preset("tiny", id2label={0: "a", 1: "b"}, extra={"note": [1, 2]})
    config.save_pretrained(tmp_path, architectures=["Wav2Vec2ConformerModel"])
    again = Wav2Vec2ConformerConfig.from_pretrained(tmp_path)
    assert again == config and again.extra == {"note": [1, 2]}
    assert isinstance(again.conv_dim, tuple) and again.id2label == {0: "a", 1: "b"}


def test_derived_values():
    config = Wav2Vec2ConformerConfig.preset("tiny")
    assert config.num_feat_extract_layers == 4 and config.inputs_to_logits_ratio == 320
    assert config.output_hidden_size == config.hidden_size == 144
    assert Wav2Vec2ConformerConfig.preset("large-rope").inputs_to_logits_ratio == 320
    assert Wav2Vec2ConformerConfig(num_labels=4).id2label == {i: f"LABEL_{i}" for i in range(4)}
    assert Wav2Vec2ConformerConfig(id2label={"0": "x", "1": "y", "2": "z"}).num_labels == 3
    assert dataclasses.replace(Wav2Vec2ConformerConfig(), num_labels=7).num_labels == 7
    assert Wav2Vec2ConformerConfig(output_hidden_size=32).output_hidden_size == 32
    assert Wav2Vec2ConformerConfig().to_diff_dict() == {}
    assert Wav2Vec2ConformerConfig(hidden_size=96).to_diff_dict() == {"hidden_size": 96, "output_hidden_size": 96}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activations_match_transformers(name):
    x = torch.linspace(-6, 6, 101)
    assert torch.allclose(get_activation(name)(x), ACT2FN[name](x), atol=1e-6), name


@pytest.mark.parametrize("kwargs, match", [
    (dict(feat_extract_norm="batch"), "feat_extract_norm must be 'group' or 'layer', got 'batch'"),
    (dict(conv_dim=(512, 512), conv_stride=(5, 2, 2)), r"conv_dim, conv_stride and conv_kernel need one entry"),
    (dict(conv_dim=(), conv_stride=(), conv_kernel=()), r"at least one"),
    (dict(tdnn_dim=(1, 2)), r"tdnn_dim, tdnn_kernel and tdnn_dilation need one entry"),
    (dict(hidden_size=100), r"hidden_size \(100\) must be divisible by num_attention_heads \(12\)"),
    (dict(hidden_size=24, num_attention_heads=4), r"divisible by num_conv_pos_embedding_groups \(16\)"),
    (dict(conv_depthwise_kernel_size=30), r"conv_depthwise_kernel_size must be odd .* got 30; use 31"),
    (dict(position_embeddings_type="absolute"), r"position_embeddings_type must be 'relative', 'rotary' or None"),
    (dict(position_embeddings_type="rotary", hidden_size=48, num_attention_heads=16,
          num_conv_pos_embedding_groups=16), r"head size .* = 3\) must be even"),
    (dict(hidden_act="gelu2"), r"hidden_act is 'gelu2', an unknown activation"),
    (dict(feat_extract_activation="elu"), r"feat_extract_activation is 'elu', an unknown activation"),
    (dict(codevector_dim=255), r"codevector_dim \(255\) must be divisible by num_codevector_groups \(2\)"),
    (dict(mask_time_prob=1.5), r"mask_time_prob must be a probability in \[0, 1\], got 1.5"),
    (dict(id2label={0: "a", 1: "b"}, num_labels=3), r"num_labels is 3 but id2label names 2 labels"),
])
def test_inconsistent_values_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Wav2Vec2ConformerConfig(**kwargs)


def test_validate_after_mutation():
    config = Wav2Vec2ConformerConfig()
    config.conv_depthwise_kernel_size = 8
    with pytest.raises(ValueError, match="conv_depthwise_kernel_size must be odd"):
        config.validate()


def test_unknown_preset_and_activation():
    with pytest.raises(ValueError, match=r"unknown preset 'huge'; expected one of \['large-rel', 'large-rope', 'tiny'\]"):
        Wav2Vec2ConformerConfig.preset("huge")
    with pytest.raises(ValueError, match="unknown activation 'elu'"):
        get_activation("elu")


def test_missing_config_json_and_wrong_model_type(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json found at .*config.json"):
        Wav2Vec2ConformerConfig.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "wav2vec2", "hidden_size": 768}))
    with pytest.raises(ValueError, match="describes a 'wav2vec2' model, expected 'wav2vec2-conformer'"):
        Wav2Vec2ConformerConfig.from_pretrained(tmp_path)

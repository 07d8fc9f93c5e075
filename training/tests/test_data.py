"""Decoding, repair, augmentation geometry and the metric, on real annotations where it matters.

    cd training && python3 -m pytest -q tests
"""
from collections import Counter

import numpy as np
import pytest

from plateseg_train import augment, data, metric
from support import coco_rle


def test_rle_round_trip_is_row_major_and_one_based():
    mask = np.zeros((data.HEIGHT, data.WIDTH), dtype=bool)
    mask[0, 0:3] = True  # first pixel of the image: start 1
    mask[1, 5] = True  # second row: start 704 + 6
    text = data.encode_rle(mask)
    assert text == f"1 3 {data.WIDTH + 6} 1"
    box, crop = data.decode_rle(text)
    assert tuple(box) == (0, 0, 6, 2)
    full = np.zeros_like(mask)
    full[0:2, 0:6] = crop
    assert np.array_equal(full, mask)


def test_rle_clips_runs_past_the_image_and_names_bad_input():
    total = data.HEIGHT * data.WIDTH
    box, crop = data.decode_rle(f"{total - 1} 10")
    assert crop.sum() == 2 and tuple(box) == (data.WIDTH - 2, data.HEIGHT - 1, data.WIDTH,
                                              data.HEIGHT)
    with pytest.raises(ValueError, match="row 7"):
        data.decode_rle("1 2 3", where="row 7")
    with pytest.raises(ValueError, match="row 8"):
        data.decode_rle("1 x", where="row 8")
    assert data.decode_rle("") is None


def test_real_annotation_decodes_to_its_first_row():
    root = data.data_root()
    with open(root / "annotations" / "train_annotations.csv") as f:
        f.readline()
        rid, rle, *_ = f.readline().strip().split(",")
    box, crop = data.decode_rle(rle)
    nums = list(map(int, rle.split()))
    assert crop.sum() == sum(nums[1::2])
    first = nums[0] - 1
    assert (box[1], box[0]) <= (first // data.WIDTH, first % data.WIDTH)
    assert crop[first // data.WIDTH - box[1], first % data.WIDTH - box[0]]


def test_repair_fills_holes_keeps_largest_piece_and_drops_duplicates():
    ring = np.ones((9, 9), dtype=bool)
    ring[4, 4] = False
    two = np.zeros((10, 30), dtype=bool)
    two[:, :20] = True
    two[0, 28] = True  # a one-pixel fragment
    tiny = np.ones((3, 3), dtype=bool)
    dup = ring.copy()
    inst = data.InstanceSet.from_crops([(0, 0, 9, 9), (50, 50, 80, 60), (200, 200, 203, 203),
                                        (1, 0, 10, 9)], [ring, two, tiny, dup])
    stats = Counter()
    out = data.repair(inst, data.RepairPolicy(min_area=20, duplicate_overlap=0.7), stats)
    assert len(out) == 2
    assert out.crops[0].all() and out.crops[0].shape == (9, 9)
    assert tuple(out.boxes[1]) == (50, 50, 70, 60)
    assert stats["holes_filled"] == 2 and stats["fragments_dropped"] == 1
    assert stats["tiny_dropped"] == 1 and stats["duplicates_dropped"] == 1


def sample_with_l_shape():
    img = np.arange(16 * 16, dtype=np.uint8).reshape(16, 16)
    crop = np.array([[1, 0], [1, 0], [1, 1]], dtype=bool)
    inst = data.InstanceSet.from_crops([(3, 5, 5, 8)], [crop])
    return augment.Sample(img, inst, np.array([2]))


@pytest.mark.parametrize("op", [lambda s: augment.flip(s, True), lambda s: augment.flip(s, False),
                                augment.rot90])
def test_geometry_moves_masks_with_the_image(op):
    s = sample_with_l_shape()
    before = s.image[s.masks()[0].astype(bool)]
    t = op(s)
    after = t.image[t.masks()[0].astype(bool)]
    assert sorted(before.tolist()) == sorted(after.tolist())
    x0, y0, x1, y1 = t.instances.boxes[0]
    assert t.instances.crops[0].shape == (y1 - y0, x1 - x0)


def test_crop_keeps_mostly_visible_cells_only():
    img = np.zeros((100, 100), dtype=np.uint8)
    big = np.ones((10, 10), dtype=bool)
    inst = data.InstanceSet.from_crops([(45, 45, 55, 55), (0, 0, 10, 10)], [big, big])
    s = augment.crop_sample(img, inst, 1, 42, np.random.default_rng(0), x=8, y=8)
    # first cell: 5x5 of 10x10 visible (25%) -> dropped; second: 2x2 visible -> dropped
    assert len(s.instances) == 0
    s = augment.crop_sample(img, inst, 1, 52, np.random.default_rng(0), x=0, y=0)
    assert len(s.instances) == 2 and s.instances.crops[0].sum() == 7 * 7  # clipped on both axes


def test_mosaic_keeps_each_parts_label():
    rng = np.random.default_rng(3)
    parts = []
    for label in (1, 2, 3, 1):
        img = np.full((64, 64), 40 * label, dtype=np.uint8)
        inst = data.InstanceSet.from_crops([(20, 20, 44, 44)], [np.ones((24, 24), bool)])
        parts.append(augment.Sample(img, inst, np.array([label])))
    m = augment.mosaic(parts, 64, rng)
    assert m.image.shape == (64, 64)
    for (x0, y0, x1, y1), lab in zip(m.instances.boxes, m.labels):
        assert np.all(m.image[y0:y1, x0:x1] == 40 * lab)


def test_semantic_marks_touching_cells_as_boundary():
    img = np.zeros((8, 8), dtype=np.uint8)
    a = np.ones((4, 2), bool)
    inst = data.InstanceSet.from_crops([(1, 1, 3, 5), (3, 1, 5, 5)], [a, a])
    s = augment.Sample(img, inst, np.array([3, 3]))
    cls = s.semantic()
    assert (cls[1:5, 2:4] == 4).all()  # the two touching columns
    assert (cls[1:5, 1] == 3).all() and (cls[1:5, 4] == 3).all()
    assert cls[0].sum() == 0


def test_metric_perfect_partial_and_empty():
    truth = data.InstanceSet.from_crops([(0, 0, 10, 10), (20, 0, 30, 10)],
                                        [np.ones((10, 10), bool)] * 2)
    perfect = np.zeros((10, 40), dtype=np.int32)
    perfect[:, :10] = 1
    perfect[:, 20:30] = 2
    assert metric.image_score(truth, perfect) == pytest.approx(1.0)
    half = perfect.copy()
    half[:, 20:30] = 0  # one of two found, no false positives: TP 1, FN 1 at every threshold
    assert metric.image_score(truth, half) == pytest.approx(0.5)
    shifted = np.zeros_like(perfect)
    shifted[:, 2:12] = 1  # IoU 8/12 = 0.667: matched at t = 0.50..0.65 only (4 of 10)
    expected = (4 * (1 / 2) + 6 * 0.0) / 10  # TP 1 FN 1, then TP 0 FP 1 FN 2
    assert metric.image_score(truth, shifted) == pytest.approx(expected)
    assert metric.image_score(truth, np.zeros_like(perfect)) == 0.0


def test_paint_drops_duplicates_and_keeps_best_first():
    m = np.zeros((3, 10, 10), dtype=bool)
    m[0, :5, :5] = True
    m[1, :5, :6] = True  # nearly the same cell, better score
    m[2, 6:, 6:] = True
    out = metric.paint(m, np.array([0.5, 0.9, 0.7]), min_area=4)
    assert out.max() == 2
    assert out[0, 5] == 1 and out[9, 9] == 2


def test_class_boost_scales_one_types_share_and_names_bad_items():
    records = [data.Record(f"i{i}", t, "train", "", None, None)
               for i, t in enumerate(["astro", "astro", "cort", "cort", "cort", "shsy5y"])]

    def share(w, t):
        return sum(wi for wi, r in zip(w, records) if r.cell_type == t)

    plain = data.sampling_weights(records)
    boosted = data.sampling_weights(records, data.parse_class_boost(["astro=2"]))
    assert boosted.sum() == pytest.approx(1.0)
    # astro's share relative to cort's doubles; the images within a type stay equally likely
    assert share(boosted, "astro") / share(boosted, "cort") == pytest.approx(
        2 * share(plain, "astro") / share(plain, "cort"))
    assert boosted[0] == boosted[1]
    for bad in ["astro", "astro=0", "glia=2", "cort=x"]:
        with pytest.raises(SystemExit, match="TYPE=FACTOR"):
            data.parse_class_boost([bad])


def test_pseudo_labels_take_the_image_type_keep_confident_cells_and_refuse_val(tmp_path):
    (tmp_path / "images.csv").write_text(
        "id,cell_type,annotated,n_cells,split,eval_mini,known_issue,annotation_sources\n"
        "u1,shsy5y,0,,unlabeled,0,,\nv1,cort,1,3,val,0,,\n")
    cell = np.zeros((data.HEIGHT, data.WIDTH), dtype=bool)
    cell[10:20, 30:45] = True
    faint = np.zeros_like(cell)
    faint[100:110, 100:110] = True
    header = "plate,well,field,image,cell_type,score,area,rle\n"
    cells = tmp_path / "cells.csv"
    cells.write_text(header + f"p,,,u1.png,astro,0.9,150,{coco_rle(cell)}\n"
                              f"p,,,u1.png,shsy5y,0.2,100,{coco_rle(faint)}\n")
    records = data.load_pseudo_labels(cells, min_score=0.5, root=tmp_path)
    assert [(r.id, r.cell_type, r.split) for r in records] == [("u1", "shsy5y", data.PSEUDO_SPLIT)]
    assert records[0].clean.boxes.tolist() == [[30, 10, 45, 20]]
    assert records[0].clean.crops[0].all()

    cells.write_text(header + f"p,,,v1.png,cort,0.9,150,{coco_rle(cell)}\n")
    with pytest.raises(ValueError, match=r"cells.csv:2: image v1 is split=val"):
        data.load_pseudo_labels(cells, root=tmp_path)
    cells.write_text(header + f"p,,,u1.png,shsy5y,high,150,{coco_rle(cell)}\n")
    with pytest.raises(ValueError, match=r"cells.csv:2: score 'high' is not a number"):
        data.load_pseudo_labels(cells, root=tmp_path)
    cells.write_text("id,annotation\nu1,1 5\n")
    with pytest.raises(ValueError, match="plateseg export"):
        data.load_pseudo_labels(cells, root=tmp_path)


def test_pseudo_labelled_images_share_their_types_draws_without_enlarging_it():
    real = [data.Record(f"i{i}", t, "train", "", None, None)
            for i, t in enumerate(["astro", "cort", "shsy5y", "shsy5y"])]
    pseudo = [data.Record(f"u{i}", "shsy5y", data.PSEUDO_SPLIT, "", None, None) for i in range(4)]

    def share(w, records, t):
        return sum(wi for wi, r in zip(w, records) if r.cell_type == t)

    plain = data.sampling_weights(real)
    mixed = data.sampling_weights(real + pseudo, pseudo_weight=0.5)
    assert share(mixed, real + pseudo, "shsy5y") == pytest.approx(share(plain, real, "shsy5y"))
    # four pseudo images at half weight draw as often as the two annotated ones together
    assert sum(mixed[4:]) == pytest.approx(sum(mixed[2:4]))
    assert mixed[2] == pytest.approx(2 * mixed[4])


def test_match_tally_counts_found_false_and_missed_per_threshold():
    truth = data.InstanceSet.from_crops([(0, 0, 10, 10), (20, 0, 30, 10)],
                                        [np.ones((10, 10), bool)] * 2)
    found = np.zeros((10, 40), dtype=np.int32)
    found[:, 2:12] = 1  # IoU 8/12: matched at 0.50..0.65 only
    found[:, 34:38] = 2  # nobody's cell
    tally = metric.MatchTally()
    tally.add("cort", truth, found)
    tally.add("cort", truth, np.zeros_like(found))
    counts = tally.counts["cort"]
    assert counts[:4].tolist() == [[1, 1, 3]] * 4
    assert counts[4:].tolist() == [[0, 2, 4]] * 6
    assert tally.lines()[1].split()[:5] == ["cort", "0.50", "1", "1", "3"]

"""Horizontal-flip test-time augmentation for Mask R-CNN (archs.maskrcnn.fuse_flip); the engine's
FlipFusion is compared against it on the parity fixture (Tests/ModelsTests/FlipFusionTests)."""
import torch

from archs import maskrcnn as M


def detections(boxes, scores, labels, mask=None):
    n = len(scores)
    probs = torch.nn.functional.one_hot(torch.tensor(labels), 3).float()
    masks = (mask if mask is not None else torch.ones(4, 4))[None].expand(n, -1, -1).clone()
    return M.Detections(torch.tensor(boxes, dtype=torch.float32), torch.tensor(scores), torch.tensor(labels), probs, masks)


def test_pairs_average_and_lone_detections_keep_half_their_score():
    a = detections([[10, 10, 30, 30], [50, 50, 70, 70]], [0.875, 0.5], [0, 1])
    b = detections([[12, 10, 32, 30], [50, 50, 70, 70]], [0.625, 0.75], [0, 0])
    fused = M.fuse_flip(a, b)
    assert fused.scores.tolist() == [0.75, 0.375, 0.25]  # the pair, b's lone one, a's (other class)
    assert fused.boxes[0].tolist() == [11, 10, 31, 30]
    assert fused.labels.tolist() == [0, 0, 1]


def test_the_better_detection_pairs_first():
    a = detections([[0, 0, 20, 20], [2, 0, 22, 20]], [0.5, 0.875], [0, 0])
    b = detections([[1, 0, 21, 20]], [0.625], [0])
    fused = M.fuse_flip(a, b, limit=10)
    assert fused.scores.tolist() == [0.75, 0.25]
    assert fused.boxes[0].tolist() == [1.5, 0, 21.5, 20]
    assert len(M.fuse_flip(a, b, limit=1).scores) == 1


def test_mirroring_moves_boxes_and_masks_and_twice_is_the_identity():
    mask = torch.arange(16, dtype=torch.float32).view(4, 4)
    a = detections([[2, 3, 10, 7]], [0.9], [1], mask)
    m = a.mirrored(20.0)
    assert m.boxes[0].tolist() == [10, 3, 18, 7]
    assert m.masks[0, 0].tolist() == [3, 2, 1, 0]
    back = m.mirrored(20.0)
    assert torch.equal(back.boxes, a.boxes) and torch.equal(back.masks, a.masks)


def test_resampling_follows_the_image():
    mask = torch.tensor([[0.0, 1, 1, 1]] * 4)
    box = torch.tensor([0.0, 0, 4, 4])
    assert torch.allclose(M.resample_mask(mask, box, box), mask)
    moved = M.resample_mask(mask, box, torch.tensor([1.0, 0, 5, 4]))
    assert torch.all(moved == 1)

import torch

from tune_nas.data.batches import Augment, TensorBatches, random_crop, random_flip


def test_random_crop_matches_a_shifted_window_of_the_padded_image():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4) + 1
    g = torch.Generator().manual_seed(0)
    out = random_crop(x, 2, g)
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):  # each output equals some 4×4 window of its own padded image
        windows = [padded[i, :, r:r + 4, c:c + 4] for r in range(5) for c in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)


def test_crop_and_flip_are_deterministic_under_a_seed_and_vary_without():
    x = torch.randn(64, 3, 8, 8)
    a = random_flip(random_crop(x, 2, torch.Generator().manual_seed(5)), torch.Generator().manual_seed(6))
    b = random_flip(random_crop(x, 2, torch.Generator().manual_seed(5)), torch.Generator().manual_seed(6))
    c = random_flip(random_crop(x, 2, torch.Generator().manual_seed(7)), torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_flip_flips_about_half_and_only_left_right():
    x = torch.arange(1000 * 1 * 1 * 3, dtype=torch.float32).view(1000, 1, 1, 3)
    out = random_flip(x, torch.Generator().manual_seed(0))
    flipped = (out == x.flip(-1)).all(dim=(1, 2, 3))
    same = (out == x).all(dim=(1, 2, 3))
    assert bool((flipped | same).all())
    assert 400 < int(flipped.sum()) < 600


def test_zero_pad_means_no_crop():
    x = torch.randn(3, 1, 4, 4)
    assert torch.equal(random_crop(x, 0), x)
    assert not Augment().enabled and Augment(crop_pad=4).enabled


def test_batches_normalise_shuffle_per_epoch_and_cover_every_image():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 2, 2).contiguous()
    labels = torch.arange(10)
    b = TensorBatches(images, labels, 4, mean=(0.0,), std=(1.0 / 255,), shuffle=True, seed=1)
    assert len(b) == 3
    b.set_epoch(0)
    epoch0 = torch.cat([y for _, y in b])
    assert sorted(epoch0.tolist()) == list(range(10))
    b.set_epoch(0)
    assert torch.equal(torch.cat([y for _, y in b]), epoch0)  # same epoch, same order
    b.set_epoch(1)
    assert not torch.equal(torch.cat([y for _, y in b]), epoch0)
    # normalisation: (x/255 - 0) / (1/255) == x
    x, y = next(iter(TensorBatches(images, labels, 10, mean=(0.0,), std=(1.0 / 255,))))
    assert torch.allclose(x[:, 0, 0, 0], y.float())
    dropped = TensorBatches(images, labels, 4, mean=(0.0,), std=(1.0,), drop_last=True)
    assert len(dropped) == 2 and sum(len(y) for _, y in dropped) == 8

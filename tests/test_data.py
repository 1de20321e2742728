import io
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from tune_nas.data.sources import DataError, load_splits, stratified_split


def test_digits_split_is_deterministic_disjoint_and_complete():
    a, b = load_splits("digits"), load_splits("digits")
    assert np.array_equal(a.train_x, b.train_x) and np.array_equal(a.test_y, b.test_y)
    assert len(a.train_x) + len(a.val_x) + len(a.test_x) == 1797
    assert a.train_x.dtype == np.uint8 and a.train_x.shape[1:] == (1, 8, 8)
    assert a.num_classes == 10 and a.in_channels == 1 and a.image_size == 8
    assert a.train_x.max() == 255  # 0..16 rescaled to the full uint8 range
    # every class in every split (stratified)
    for y in (a.train_y, a.val_y, a.test_y):
        assert set(np.unique(y)) == set(range(10))
    # read from scikit-learn's CSV without importing it: the same images and labels as
    # sklearn.datasets.load_digits, each exactly once across the three splits
    from sklearn.datasets import load_digits
    bunch = load_digits()
    expected = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    ours = np.concatenate([a.train_x, a.val_x, a.test_x])[:, 0]
    ours_y = np.concatenate([a.train_y, a.val_y, a.test_y])
    assert len(ours) == len(expected) == 1797
    key = lambda imgs, ys: sorted(zip((i.tobytes() for i in imgs), ys.tolist()))  # noqa: E731
    assert key(ours, ours_y) == key(expected, bunch.target)


def test_stratified_split_holds_out_fraction_of_each_class():
    labels = np.repeat(np.arange(4), 50)
    kept, held = stratified_split(labels, 0.2, seed=1)
    assert len(np.intersect1d(kept, held)) == 0 and len(kept) + len(held) == 200
    assert np.bincount(labels[held]).tolist() == [10, 10, 10, 10]


def _png(color, size=6, mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


def _make_tree(root, with_val=False):
    splits = {"train": 6, "test": 2} | ({"val": 2} if with_val else {})
    for split, n in splits.items():
        for cls, color in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                (d / f"{i}.png").write_bytes(_png(color))


def test_imagefolder_directory_decodes_labels_and_caches(tmp_path):
    _make_tree(tmp_path / "pets")
    s = load_splits(f"imagefolder:{tmp_path / 'pets'}")
    assert s.classes == ("cat", "dog") and s.in_channels == 3 and s.image_size == 6
    assert len(s.train_x) + len(s.val_x) == 12 and len(s.test_x) == 4
    # red images are class 0, blue class 1
    assert (s.test_x[s.test_y == 0][:, 0] == 255).all() and (s.test_x[s.test_y == 1][:, 2] == 255).all()
    caches = list(tmp_path.glob(".pets.tune_nas-cache-*"))
    assert len(caches) == 1 and (caches[0] / "train_x.npy").exists()
    again = load_splits(f"imagefolder:{tmp_path / 'pets'}")  # from the cache
    assert np.array_equal(again.train_x, s.train_x) and again.classes == s.classes


def test_an_image_folder_changed_inside_its_class_folders_is_decoded_again(tmp_path):
    """The cache follows the images, not the top directory's time: an image moved to another
    class folder (a label fixed) or added is seen on the next load."""
    _make_tree(tmp_path / "pets")
    first = load_splits(f"imagefolder:{tmp_path / 'pets'}")
    assert np.bincount(np.concatenate([first.train_y, first.val_y])).tolist() == [6, 6]
    os.rename(tmp_path / "pets" / "train" / "cat" / "0.png", tmp_path / "pets" / "train" / "dog" / "9.png")
    (tmp_path / "pets" / "train" / "dog" / "10.png").write_bytes(_png((0, 0, 255)))
    again = load_splits(f"imagefolder:{tmp_path / 'pets'}")
    assert np.bincount(np.concatenate([again.train_y, again.val_y])).tolist() == [5, 8]
    shared = tmp_path / "elsewhere" / "bird"  # a class folder linked in from elsewhere
    shared.mkdir(parents=True)
    for i in range(6):
        (shared / f"{i}.png").write_bytes(_png((0, 255, 0)))
    (tmp_path / "pets" / "train" / "bird").symlink_to(shared)
    assert load_splits(f"imagefolder:{tmp_path / 'pets'}").classes == ("bird", "cat", "dog")
    (shared / "6.png").write_bytes(_png((0, 255, 0)))  # an image added behind the link
    linked = load_splits(f"imagefolder:{tmp_path / 'pets'}")
    assert np.bincount(np.concatenate([linked.train_y, linked.val_y])).tolist() == [7, 5, 8]
    (shared / "6.png").unlink()
    (tmp_path / "pets" / "train" / "bird").unlink()
    caches = sorted(tmp_path.glob(".pets.tune_nas-cache-*"))
    assert len(caches) == 4  # one per content the folder had
    (tmp_path / "pets" / "train" / ".DS_Store").write_bytes(b"Bud1")  # no image: the cache stands
    assert load_splits(f"imagefolder:{tmp_path / 'pets'}").classes == ("cat", "dog")
    assert sorted(tmp_path.glob(".pets.tune_nas-cache-*")) == caches


def _grey_tree(root, counts: dict[str, dict[str, int]]) -> None:
    for split, classes in counts.items():
        for cls, n in classes.items():
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                (root / split / cls / f"{i}.png").write_bytes(_png(10 * i, mode="L"))


@pytest.mark.parametrize("counts, message", [
    ({"train": {"a": 10}, "test": {"a": 3}}, r"train/ holds 1 class folder with images \(a\)"),
    ({"train": {"a": 10, "b": 0}, "test": {"a": 3}}, "1 class folder"),  # an empty class folder is none
    ({"train": {"a": 2, "b": 3}, "test": {"a": 1, "b": 1}}, "no validation images.*at least 6 training images"),
])
def test_image_folders_a_classifier_cannot_learn_from_are_refused(tmp_path, counts, message):
    _grey_tree(tmp_path / "f", counts)
    with pytest.raises(DataError, match=message):
        load_splits(f"imagefolder:{tmp_path / 'f'}")
    assert not list(tmp_path.glob(".f.tune_nas-cache-*"))  # nothing cached


def test_a_train_fraction_that_drops_a_class_is_refused():
    from tune_nas.data.sources import reduce_fidelity

    digits = load_splits("digits")
    with pytest.raises(DataError, match=r"train_fraction=0.003: keeps no training image of a class"):
        reduce_fidelity(digits, 0.003)
    assert set(reduce_fidelity(digits, 0.01).train_y.tolist()) == set(range(10))


def test_imagefolder_tar_gz_with_val_split(tmp_path):
    _make_tree(tmp_path / "src" / "pets", with_val=True)
    archive = tmp_path / "pets.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "pets", arcname="pets")
    s = load_splits(f"imagefolder:{archive}")
    assert (len(s.train_x), len(s.val_x), len(s.test_x)) == (12, 4, 4)


def test_imagefolder_zip_made_on_a_mac_reads_like_the_directory(tmp_path):
    """A zip archive (what data sets are often shipped as) with macOS's metadata beside the
    images (``__MACOSX/``, ``._0.png`` resource forks, ``.DS_Store``): the same splits as the
    directory; the metadata is no image and is skipped, not refused."""
    import zipfile

    _make_tree(tmp_path / "src" / "pets", with_val=True)
    (tmp_path / "src" / "pets" / "train" / "cat" / "._0.png").write_bytes(b"\x00\x05\x16\x07 resource fork")
    (tmp_path / "src" / "pets" / "train" / ".DS_Store").write_bytes(b"Bud1")
    archive = tmp_path / "pets.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted((tmp_path / "src").rglob("*")):
            z.write(f, f.relative_to(tmp_path / "src").as_posix())
        z.writestr("__MACOSX/pets/train/dog/._1.png", b"\x00\x05\x16\x07")
    from_zip = load_splits(f"imagefolder:{archive}")
    from_dir = load_splits(f"imagefolder:{tmp_path / 'src' / 'pets'}")
    assert (len(from_zip.train_x), len(from_zip.val_x), len(from_zip.test_x)) == (12, 4, 4)
    assert np.array_equal(from_zip.train_x, from_dir.train_x) and from_zip.classes == ("cat", "dog")
    windows = tmp_path / "windows.zip"  # names with backslashes, as some Windows tools wrote them
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(windows, "w") as z:
        for info in src.infolist():
            if not info.is_dir():
                z.writestr(info.filename.replace("/", "\\"), src.read(info))
    assert np.array_equal(load_splits(f"imagefolder:{windows}").train_x, from_dir.train_x)
    (tmp_path / "broken.zip").write_bytes(archive.read_bytes()[:200])
    with pytest.raises(DataError, match="broken.zip: not a readable archive"):
        load_splits(f"imagefolder:{tmp_path / 'broken.zip'}")


def test_grayscale_images_keep_one_channel(tmp_path):
    for split in ("train", "test"):
        for cls in ("a", "b"):
            d = tmp_path / "g" / split / cls
            d.mkdir(parents=True)
            for i in range(6):
                (d / f"{i}.png").write_bytes(_png(100, mode="L"))
    s = load_splits(f"imagefolder:{tmp_path / 'g'}")
    assert s.in_channels == 1


def _save(path, array, dtype=np.uint8):
    """An image file of ``array`` (H×W grey, H×W×2 grey and alpha, H×W×3 colour; uint16: 16-bit
    grey, bool: binary)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype)).save(path)


def test_images_of_several_sizes_and_modes_are_brought_to_one_square_format(tmp_path):
    """A folder of real-world images: sizes differ, some are not square, some grey. Every image
    is resized (shorter side) to the median shorter side of the training images, centre-cropped,
    and grey ones get three channels when any image is in colour."""
    root = tmp_path / "mixed"
    red, blue = (255, 0, 0), (0, 0, 255)
    wide = np.zeros((8, 16, 3), np.uint8)  # red | blue (the middle half) | red
    wide[:, :4], wide[:, 4:12], wide[:, 12:] = red, blue, red
    for i in range(6):
        _save(root / "train" / "wide" / f"{i}.png", wide)
        _save(root / "train" / "big" / f"{i}.png", np.full((16, 16, 3), (0, 200, 0)))
        _save(root / "train" / "grey" / f"{i}.png", np.full((12, 8), 100))
    for cls in ("wide", "big", "grey"):
        _save(root / "test" / cls / "0.png", np.full((24, 30, 3), 7))
    s = load_splits(f"imagefolder:{root}")
    assert s.image_size == 8 and s.in_channels == 3  # median of the shorter sides 8, 16, 8
    assert s.train_x.shape[1:] == s.val_x.shape[1:] == s.test_x.shape[1:] == (3, 8, 8)
    x = np.concatenate([s.train_x, s.val_x])
    y = np.concatenate([s.train_y, s.val_y])
    index = {c: i for i, c in enumerate(s.classes)}
    assert (x[y == index["wide"]].transpose(0, 2, 3, 1) == blue).all()  # the centre, cut out
    assert (x[y == index["big"]].transpose(0, 2, 3, 1) == (0, 200, 0)).all()  # downscaled
    assert (x[y == index["grey"]] == 100).all()  # three equal channels
    assert (s.test_x == 7).all()
    assert "resized to 8 px" in s.describe() and "grey images given three channels" in s.describe()
    again = load_splits(f"imagefolder:{root}")  # the cache keeps the arrays and the note
    assert np.array_equal(again.train_x, s.train_x) and again.note == s.note


def test_sixteen_bit_and_binary_grey_images_keep_their_values_in_one_channel(tmp_path):
    """16-bit grey PNGs (scientific cameras, simulations) are scaled to 8 bits, not clipped at
    255; binary and grey-with-alpha images stay grey."""
    root = tmp_path / "deep"
    ramp = (np.arange(36).reshape(6, 6) * 1800).astype(np.uint16)  # 0 .. 63,000
    for split in ("train", "test"):
        for i in range(6):
            _save(root / split / "ramp" / f"{i}.png", ramp, np.uint16)
            _save(root / split / "bits" / f"{i}.png", np.eye(6), bool)
            _save(root / split / "alpha" / f"{i}.png", np.full((6, 6, 2), 90))
    s = load_splits(f"imagefolder:{root}")
    assert s.in_channels == 1 and s.note == ""
    index = {c: i for i, c in enumerate(s.classes)}
    ramps = s.test_x[s.test_y == index["ramp"]][:, 0]
    assert (ramps == np.rint(ramp / 257).astype(np.uint8)).all() and ramps.max() == 245
    assert (s.test_x[s.test_y == index["bits"]][:, 0] == np.eye(6) * 255).all()
    assert (s.test_x[s.test_y == index["alpha"]] == 90).all()


def test_tiff_images_16_bit_and_float_are_read_on_one_scale_per_folder(tmp_path):
    """TIFFs (microscopes, simulations), also with an upper-case suffix: 16-bit grey scaled to 8
    bits; float grey on one scale for the whole folder — ×255 when every float image is in
    [0, 1], rounded when they reach up to 255 (a dark image stays dark next to bright ones, not
    stretched to full brightness on its own); a float range that is neither is refused naming
    the file (rescaling it alone would change what it shows)."""
    ramp16 = (np.arange(36).reshape(6, 6) * 1800).astype(np.uint16)
    unit = np.linspace(0, 1, 36, dtype=np.float32).reshape(6, 6)
    root = tmp_path / "unit"
    for split in ("train", "test"):
        for i in range(6):
            _save(root / split / "deep" / f"{i}.tif", ramp16, np.uint16)
            _save(root / split / "bright" / f"{i}.TIFF", unit, np.float32)
            _save(root / split / "dim" / f"{i}.tiff", unit / 4, np.float32)
    s = load_splits(f"imagefolder:{root}")
    index = {c: i for i, c in enumerate(s.classes)}
    assert s.in_channels == 1 and sorted(index) == ["bright", "deep", "dim"]
    assert (s.test_x[s.test_y == index["deep"]][:, 0] == np.rint(ramp16 / 257)).all()
    assert (s.test_x[s.test_y == index["bright"]][:, 0] == np.rint(unit * 255)).all()
    assert (s.test_x[s.test_y == index["dim"]][:, 0] == np.rint(unit / 4 * 255)).all()
    assert "24 float images in [0, 1] scaled by 255" in s.describe()

    root = tmp_path / "bytes"
    for split in ("train", "test"):
        for i in range(6):
            _save(root / split / "bright" / f"{i}.tif", unit * 200, np.float32)
            _save(root / split / "dark" / f"{i}.tif", unit * 0.8, np.float32)  # below 1, yet no [0, 1] image
    s = load_splits(f"imagefolder:{root}")
    index = {c: i for i, c in enumerate(s.classes)}
    assert (s.test_x[s.test_y == index["bright"]][:, 0] == np.rint(unit * 200)).all()
    assert (s.test_x[s.test_y == index["dark"]][:, 0] == np.rint(unit * 0.8)).all()  # 0 or 1, not 0 .. 204
    assert "24 float images in [0, 255] rounded (12 of them hold values <= 1 only" in s.describe()

    _save(root / "train" / "bright" / "6.tif", unit * 1000 - 5, np.float32)
    with pytest.raises(DataError, match=r"train/bright/6.tif: a float image with values from -5 to 995; rule"):
        load_splits(f"imagefolder:{root}")


@pytest.mark.parametrize("packed", [False, True])
def test_split_folders_by_other_names_and_images_in_subfolders_are_read(tmp_path, packed):
    """Data sets ship their splits as Training/valid/Test and keep images in subfolders of a
    class (torchvision's ImageFolder reads those): all of them are read; hidden folders (a
    notebook's .ipynb_checkpoints) are not."""
    root = tmp_path / "shipped"
    for split, per_class in (("Training", 6), ("valid", 2), ("TEST", 3)):
        for cls, value in (("cat", 10), ("dog", 200)):
            for i in range(per_class):
                _save(root / split / cls / f"{i}.png", np.full((6, 6), value))
    for i in range(4):  # more cats, a level down
        _save(root / "Training" / "cat" / "batch2" / f"{i}.png", np.full((6, 6), 10))
    _save(root / "Training" / "dog" / ".ipynb_checkpoints" / "0.png", np.full((6, 6), 10))
    _save(root / "Training" / ".ipynb_checkpoints" / "0.png", np.full((6, 6), 10))
    source = root
    if packed:
        import zipfile

        source = tmp_path / "shipped.zip"
        with zipfile.ZipFile(source, "w") as z:
            for f in sorted(root.rglob("*.png")):
                z.write(f, f.relative_to(tmp_path).as_posix())
    s = load_splits(f"imagefolder:{source}")
    assert s.classes == ("cat", "dog")
    assert (len(s.train_y), len(s.val_y), len(s.test_y)) == (16, 4, 6)  # valid/ is the validation split
    assert np.bincount(s.train_y).tolist() == [10, 6]
    assert (s.train_x[s.train_y == 1] == 200).all()  # no cat in the dogs' hidden folder


def test_linked_folders_are_followed_but_a_link_back_to_a_folder_above_is_not(tmp_path):
    """A link to more images of a class is followed (as torchvision's ImageFolder does); a link
    back to a folder above (a cycle) would read the tree again and again: it is skipped."""
    root, extra = tmp_path / "linked", tmp_path / "more_cats"
    for split in ("train", "test"):
        for cls, value in (("cat", 10), ("dog", 200)):
            for i in range(6):
                _save(root / split / cls / f"{i}.png", np.full((6, 6), value))
    for i in range(3):
        _save(extra / f"{i}.png", np.full((6, 6), 10))
    (root / "train" / "cat" / "more").symlink_to(extra)
    (root / "train" / "cat" / "all").symlink_to(root / "train")  # a cycle
    (root / "train" / "dog" / "up").symlink_to(tmp_path)  # above the whole folder
    s = load_splits(f"imagefolder:{root}")
    assert len(s.train_y) + len(s.val_y) == 15 and len(s.test_y) == 12
    assert np.bincount(np.concatenate([s.train_y, s.val_y])).tolist() == [9, 6]
    assert (s.train_x[s.train_y == 1] == 200).all()  # no image read twice into another class


def test_folders_beside_the_splits_are_not_read_and_links_between_class_folders_end(tmp_path, monkeypatch):
    """A folder beside train/ and test/ that is no split is not walked (it was: a link to / there
    read the whole file system, a link to /proc/self never ended); links that lead from one
    class folder into another and back are walked once each, not until the link limit."""
    monkeypatch.setenv("TUNE_NAS_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "pets"
    _make_tree(root)
    (root / "notes").mkdir()
    (root / "notes" / "broken.png").symlink_to(tmp_path / "nothing.png")  # read, it would be refused
    (root / "rootlink").symlink_to("/")
    (root / "train" / "cat" / "to_dog").symlink_to(root / "train" / "dog")
    (root / "train" / "dog" / "to_cat").symlink_to(root / "train" / "cat")
    s = load_splits(f"imagefolder:{root}")
    # each class: its own 6 and, through its link, the other's 6, once (the link back is not followed)
    assert np.bincount(np.concatenate([s.train_y, s.val_y])).tolist() == [12, 12]
    assert len(s.test_y) == 4


def test_a_split_folder_given_for_the_whole_folder_is_named_so(tmp_path):
    _make_tree(tmp_path / "pets")
    with pytest.raises(DataError, match=r"found splits none \(train/ is itself a train split folder: name the "
                                        r"folder above it\); rule: the folder must hold train/<class>/<image>"):
        load_splits(f"imagefolder:{tmp_path / 'pets' / 'train'}")


def test_two_folders_of_one_split_are_refused(tmp_path):
    _make_tree(tmp_path / "twice")
    for cls in ("cat", "dog"):
        _save(tmp_path / "twice" / "Validation" / cls / "0.png", np.full((6, 6), 1))
        _save(tmp_path / "twice" / "val" / cls / "0.png", np.full((6, 6), 1))
    with pytest.raises(DataError, match=r"Validation/ and val/ both hold the val split; rule: one folder per split"):
        load_splits(f"imagefolder:{tmp_path / 'twice'}")


def test_images_of_one_square_size_are_left_as_they_are(tmp_path):
    _make_tree(tmp_path / "pets")
    s = load_splits(f"imagefolder:{tmp_path / 'pets'}")
    assert s.note == "" and s.image_size == 6 and "(" not in s.describe()


@pytest.mark.parametrize("spec, needle", [
    ("imagenet", "unknown data set"),
    ("imagefolder:/no/such/dir", "no such directory"),
])
def test_bad_dataset_names(spec, needle):
    with pytest.raises(DataError, match=needle):
        load_splits(spec)


def test_missing_torchvision_data_offline_names_directory(tmp_path, monkeypatch):
    import torchvision

    def offline(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    with pytest.raises(DataError, match=str(tmp_path / "nodata")):
        load_splits("mnist", tmp_path / "nodata")


def test_imagefolder_without_test_split_is_refused(tmp_path):
    d = tmp_path / "x" / "train" / "a"
    d.mkdir(parents=True)
    (d / "0.png").write_bytes(_png((1, 2, 3)))
    with pytest.raises(DataError, match="test/"):
        load_splits(f"imagefolder:{tmp_path / 'x'}")


@pytest.mark.parametrize("odd, message", [
    ("dangling", r"train/cat/odd\.png: a link to .*gone\.png, which does not exist; rule: image files"),
    ("fifo", r"train/cat/odd\.png: not a regular file; rule: image files"),  # reading it would wait forever
])
def test_an_image_name_that_is_no_readable_file_is_named(tmp_path, odd, message):
    _make_tree(tmp_path / "pets")
    path = tmp_path / "pets" / "train" / "cat" / "odd.png"
    if odd == "dangling":
        path.symlink_to(tmp_path / "gone.png")
    else:
        os.mkfifo(path)
    with pytest.raises(DataError, match=message):
        load_splits(f"imagefolder:{tmp_path / 'pets'}")
    assert not list(tmp_path.glob(".pets.tune_nas-cache-*"))  # refused before anything is written


def test_an_image_beyond_pils_decompression_bomb_limit_is_named(tmp_path, monkeypatch):
    _make_tree(tmp_path / "pets")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # a 6×6 image is 3.6 times the limit: PIL refuses it
    with pytest.raises(DataError, match=r"(train|test)/cat/0\.png: Image size \(36 pixels\) exceeds limit of 20 .*"
                                        r"rule: images of at most Image.MAX_IMAGE_PIXELS"):
        load_splits(f"imagefolder:{tmp_path / 'pets'}")


def test_a_float_image_with_nan_is_named_once(tmp_path):
    _make_tree(tmp_path / "pets")
    Image.fromarray(np.full((6, 6), np.nan, np.float32)).save(tmp_path / "pets" / "train" / "cat" / "nan.tif")
    with pytest.raises(DataError) as info:
        load_splits(f"imagefolder:{tmp_path / 'pets'}")
    assert str(info.value).count("rule:") == 1 and "NaN or infinite pixels" in str(info.value)


def test_hard_and_symbolic_links_in_a_tar_archive_are_read_like_the_directory(tmp_path):
    """GNU tar stores the second name of a hard-linked file as a link member: the archive gives
    the split sizes of the directory it was made from (it dropped those images)."""
    src = tmp_path / "linked"
    _make_tree(src)
    for split in ("train", "test"):
        os.link(src / split / "cat" / "0.png", src / split / "cat" / "hard.png")
        (src / split / "dog" / "soft.png").symlink_to("0.png")
    with tarfile.open(tmp_path / "linked.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="linked")
    assert any(m.islnk() for m in tarfile.open(tmp_path / "linked.tar.gz").getmembers())  # the premise
    folder, archive = load_splits(f"imagefolder:{src}"), load_splits(f"imagefolder:{tmp_path / 'linked.tar.gz'}")
    assert archive.describe().split(": ", 1)[1] == folder.describe().split(": ", 1)[1]
    assert len(archive.test_y) == 6 and np.array_equal(np.sort(archive.test_y), np.sort(folder.test_y))


def test_a_class_named_like_a_split_does_not_hide_the_splits_of_an_archive(tmp_path):
    """A class named ``train`` (``vehicles/test/train/0.png``, a shorter name than any training
    file) and a ``training/`` folder of notes are no training split: the zip reads as the directory."""
    import zipfile

    with zipfile.ZipFile(tmp_path / "vehicles.zip", "w") as z:
        for split, n in (("training", 6), ("test", 2)):
            for cls in ("bus", "train"):
                for i in range(n):
                    z.writestr(f"vehicles/{split}/{cls}/{'long_name_' if split == 'training' else ''}{i}.png",
                               _png((40, 40, 40) if cls == "bus" else (200, 200, 200)))
        z.writestr("docs/training/notes.txt", "not images")
    s = load_splits(f"imagefolder:{tmp_path / 'vehicles.zip'}")
    assert s.classes == ("bus", "train") and len(s.test_y) == 4 and len(s.train_y) + len(s.val_y) == 12


def test_a_class_name_with_a_newline_is_one_class_from_the_cache_too(tmp_path):
    _make_tree(tmp_path / "odd")
    (tmp_path / "odd" / "train" / "cat").rename(tmp_path / "odd" / "train" / "c\nat")
    (tmp_path / "odd" / "test" / "cat").rename(tmp_path / "odd" / "test" / "c\nat")
    first = load_splits(f"imagefolder:{tmp_path / 'odd'}")
    again = load_splits(f"imagefolder:{tmp_path / 'odd'}")  # from the cache
    assert first.classes == again.classes == ("c\nat", "dog")


def test_thirty_two_bit_integer_images_beyond_sixteen_bits_are_refused_not_clipped(tmp_path):
    _make_tree(tmp_path / "deep")
    Image.fromarray(np.full((6, 6), 100_000, np.int32), mode="I").save(tmp_path / "deep" / "train" / "cat" / "x.tif")
    with pytest.raises(DataError, match=r"train/cat/x\.tif: a I image with values from 100000 to 100000; rule: "
                                        r"integer grey images hold 0\.\.65535"):
        load_splits(f"imagefolder:{tmp_path / 'deep'}")


def test_an_archive_holding_two_data_sets_side_by_side_is_refused_as_the_directory_is(tmp_path):
    for name in ("a_old", "b_new"):
        _make_tree(tmp_path / "two" / name)
    with tarfile.open(tmp_path / "two.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "two", arcname="two")
    with pytest.raises(DataError, match=r"found splits \['a_old', 'b_new'\]"):
        load_splits(f"imagefolder:{tmp_path / 'two'}")
    with pytest.raises(DataError, match=r"two\.tar\.gz: found a training split under each of two/a_old/, two/b_new/; "
                                        r"rule: one data set per archive"):
        load_splits(f"imagefolder:{tmp_path / 'two.tar.gz'}")

"""The round-trip contract of etcdfs (issue 3), checked with the counters of
<mount>/.etcdfs/stats and with etcd's own revision (every etcd write adds exactly one).

Mounts use a long cache timeout so that no cached answer expires in the middle of a
measurement: what is measured is the design, not the speed of the machine."""

import os
import subprocess

import pytest
from etcd_fixtures import wait_for
from fs_tool_helpers import RENAME_EXCHANGE, renameat2

pytestmark = pytest.mark.needs_etcdfs

LONG_CACHE = ("cache_timeout=60",)


def revision(etcd):
    return int(etcd.status()["header"]["revision"])


def delta(before, after, *names):
    return {n: after.get(n, 0) - before.get(n, 0) for n in names}


RT = ("rt_range", "rt_put", "rt_delete_range", "rt_txn", "rt_total", "rt_status")


def sh(cmd, cwd):
    subprocess.run(["sh", "-c", cmd], cwd=cwd, check=True)


def test_stats_file_is_hidden_and_readable(etcd, mount):
    m = mount(etcd, options=LONG_CACHE)
    assert ".etcdfs" not in os.listdir(m.path)
    s = m.stats()
    for name in RT + ("op_lookup", "op_open", "op_write", "op_flush", "cache_open_hit"):
        assert name in s, name
    # reading the statistics costs no round trip
    before = m.stats()
    after = m.stats()
    assert delta(before, after, "rt_total")["rt_total"] == 0
    with pytest.raises(OSError):
        open(m.path / ".etcdfs" / "stats", "w")


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
def test_echo_is_one_write(etcd, mount, existing):
    if existing:
        etcd.ctl("put", "/f", "old content")
    m = mount(etcd, options=LONG_CACHE)
    os.listdir(m.path)  # the directory is known, as in an interactive shell
    rev0, s0 = revision(etcd), m.stats()
    sh("echo x > f", m.path)
    s1, rev1 = m.stats(), revision(etcd)
    d = delta(s0, s1, *RT)
    assert rev1 - rev0 == 1, "exactly one etcd write"
    # the write is a Put, or a Txn that also checks the parent directory still exists
    assert d["rt_put"] + d["rt_txn"] >= 1 and d["rt_delete_range"] == 0, d
    # an existing name is answered by the listing; a new one costs one read-only Txn for the
    # lookup miss (close-to-open for names, docs/consistency.md), never a second write
    assert d["rt_total"] == (1 if existing else 2), d
    assert etcd.ctl("get", "--print-value-only", "/f") == "x\n\n"


def test_echo_into_unlisted_directory_is_one_write(etcd, mount):
    etcd.ctl("put", "/d/other", "1")
    m = mount(etcd, options=LONG_CACHE)
    rev0, s0 = revision(etcd), m.stats()
    sh("echo hello > d/new", m.path)
    s1, rev1 = m.stats(), revision(etcd)
    assert rev1 - rev0 == 1
    d = delta(s0, s1, *RT)
    # the write: a Put, or a Txn that also checks the directory still exists (the revision
    # above counts writes: exactly one)
    assert d["rt_put"] + d["rt_txn"] >= 1 and d["rt_delete_range"] == 0, d
    # lookups of d and d/new cost at most one read each; never a write
    assert d["rt_total"] <= 3, d
    assert etcd.ctl("get", "--print-value-only", "/d/new") == "hello\n\n"


def test_cat_unchanged_file_is_one_round_trip_without_value(etcd, mount):
    etcd.ctl("put", "/conf", "v" * 1000)
    m = mount(etcd, options=LONG_CACHE)
    assert (m.path / "conf").read_text() == "v" * 1000
    s0 = m.stats()
    out = subprocess.run(["cat", str(m.path / "conf")], capture_output=True, text=True,
                         check=True).stdout
    s1 = m.stats()
    assert out == "v" * 1000
    d = delta(s0, s1, "rt_total", "rt_txn", "cache_open_hit")
    assert d["rt_total"] <= 1, d
    assert d["cache_open_hit"] == 1, d  # revalidated with no value transfer


def test_cat_sees_change_made_elsewhere(etcd, mount):
    etcd.ctl("put", "/conf", "one")
    m = mount(etcd, options=LONG_CACHE)
    assert (m.path / "conf").read_text() == "one"
    etcd.ctl("put", "/conf", "two, longer")
    s0 = m.stats()
    assert (m.path / "conf").read_text() == "two, longer"  # close-to-open
    # one revalidation at most (none of it a value transfer when the watch came first)
    assert delta(s0, m.stats(), "rt_total")["rt_total"] <= 1


def fill(etcd, keys):
    c = etcd.client()
    try:
        keys = list(keys)
        for i in range(0, len(keys), 100):
            c.transaction(compare=[], success=[c.transactions.put(k, v) for k, v in
                                               keys[i:i + 100]], failure=[])
    finally:
        c.close()


def test_ls_l_costs_pages_not_entries(etcd, mount):
    n_files, n_dirs, deep = 600, 4, 2500
    keys = [(f"/big/f{i:04d}", f"value {i}") for i in range(n_files)]
    for d in range(n_dirs):
        keys += [(f"/big/sub{d}/x/{j:05d}", "deep") for j in range(deep)]
    fill(etcd, keys)
    m = mount(etcd, options=LONG_CACHE)
    s0 = m.stats()
    out = subprocess.run(["ls", "-l", str(m.path / "big")], capture_output=True, text=True,
                         check=True).stdout
    s1 = m.stats()
    lines = [line for line in out.splitlines() if not line.startswith("total")]
    assert len(lines) == n_files + n_dirs
    # exact sizes come with the listing
    assert any(line.split()[4] == str(len("value 599")) for line in lines)
    d = delta(s0, s1, "rt_total", "listing_pages", "op_lookup", "op_getattr")
    page = 256
    budget = -(-n_files // page) + n_dirs + 2  # pages + one per subdirectory + lookup of big
    assert d["rt_total"] <= budget, d
    # reading the whole subtree would need (600 + 4*2500) / 256 = 41 pages
    assert d["listing_pages"] <= budget, d
    # stat of every entry just listed: no round trip at all
    # (every opendir reads the directory again: close-to-open for names, same budget)
    s2 = m.stats()
    names = os.listdir(m.path / "big")
    s3 = m.stats()
    assert delta(s2, s3, "rt_total")["rt_total"] <= budget
    for name in names:
        os.stat(m.path / "big" / name)
    assert delta(s3, m.stats(), "rt_total")["rt_total"] == 0
    s4 = m.stats()
    for name in [f"f{i:04d}" for i in range(0, n_files, 7)]:
        os.stat(m.path / "big" / name)
    assert delta(s4, m.stats(), "rt_total")["rt_total"] == 0


def test_read_after_listing_needs_no_value_transfer(etcd, mount):
    fill(etcd, [(f"/l/k{i}", f"content {i}") for i in range(20)])
    m = mount(etcd, options=LONG_CACHE)
    os.listdir(m.path / "l")
    s0 = m.stats()
    for i in range(20):
        assert (m.path / "l" / f"k{i}").read_text() == f"content {i}"
    d = delta(s0, m.stats(), "rt_total", "cache_open_hit", "rt_range")
    assert d["cache_open_hit"] == 20 and d["rt_total"] <= 20 and d["rt_range"] == 0, d


def test_create_write_close_of_many_files_is_one_write_each(etcd, mount):
    m = mount(etcd, options=LONG_CACHE)
    os.mkdir(m.path / "many")
    os.listdir(m.path / "many")
    rev0 = revision(etcd)
    s0 = m.stats()
    for i in range(10):
        with open(m.path / "many" / f"f{i}", "w") as f:
            for _ in range(5):
                f.write("chunk ")  # five writes, one Put
    s1 = m.stats()
    assert revision(etcd) - rev0 == 10
    # one write each (counted by the revision above: a Txn that also checks the directory
    # still exists), plus at most one read-only lookup Txn for each new name
    d = delta(s0, s1, "rt_put", "rt_txn", "rt_total", "rt_delete_range")
    assert d["rt_delete_range"] == 0 and d["rt_total"] <= 20, d
    c = etcd.client()
    try:
        assert c.get("/many/f3")[0] == b"chunk " * 5
    finally:
        c.close()


WATCH = LONG_CACHE + ("consistency=watch",)


@pytest.mark.parametrize("made_here", [True, False], ids=["mkdir", "listed"])
def test_new_files_cost_one_round_trip_each_in_watch_mode(etcd, mount, made_here):
    """In watch mode the directory's listing, kept by the watch and by this mount's own
    creates, proves a new name absent: `echo > new` is the write alone, file after file."""
    if not made_here:
        etcd.ctl("put", "/w/other", "1")
    m = mount(etcd, options=WATCH)
    if made_here:
        os.mkdir(m.path / "w")  # created empty: its listing is known without asking
    else:
        os.listdir(m.path / "w")
    rev0, s0 = revision(etcd), m.stats()
    for i in range(20):
        sh(f"echo {i} > w/f{i}", m.path)
    s1 = m.stats()
    assert revision(etcd) - rev0 == 20
    d = delta(s0, s1, *RT)
    assert d["rt_total"] == 20 and d["rt_delete_range"] == 0, d
    assert etcd.ctl("get", "--print-value-only", "/w/f7") == "7\n\n"


def settled_stats(m):
    """The stats once the mount has stopped making round trips of its own accord (the inotify
    replay of changes made elsewhere reads new keys, notify_replay.h)."""
    import time
    prev = m.stats()
    for _ in range(100):
        time.sleep(0.3)
        cur = m.stats()
        if cur["rt_total"] == prev["rt_total"]:
            return cur
        prev = cur
    raise AssertionError("the mount kept making round trips")


def test_changes_made_elsewhere_keep_new_names_free_in_watch_mode(etcd, mount):
    """A key created elsewhere in a listed directory, or created and deleted there, stops the
    listing vouching for that one name, not for the others: new names are still proved absent
    without a round trip, the new names are read from etcd, a key changed elsewhere reads its
    new value, and ls reads the directory again. A listed file deleted elsewhere drops the listing (it would keep holding
    the file's value): the next new name costs its lookup again."""
    etcd.ctl("put", "/w/other", "old")
    etcd.ctl("put", "/w/keep", "k")
    m = mount(etcd, options=WATCH)
    assert sorted(os.listdir(m.path / "w")) == ["keep", "other"]
    etcd.ctl("put", "/w/remote", "r")
    etcd.ctl("put", "/w/other", "new")
    etcd.ctl("put", "/w/brief", "b")
    etcd.ctl("del", "/w/brief")
    # the delete's event, the last one, has been applied once the watch reached its revision
    rev = revision(etcd)
    wait_for(lambda: m.stats()["watch_revision"] >= rev, 30, "the delete to arrive")
    rev0, s0 = revision(etcd), settled_stats(m)
    for i in range(20):
        sh(f"echo {i} > w/f{i}", m.path)
    s1 = m.stats()
    assert revision(etcd) - rev0 == 20
    d = delta(s0, s1, *RT)
    assert d["rt_total"] == 20, d  # the writes alone: no lookup of the new names
    assert (m.path / "w" / "other").read_bytes() == b"new"
    assert (m.path / "w" / "remote").read_bytes() == b"r"
    assert not os.path.exists(m.path / "w" / "brief")
    names = ["keep", "other", "remote"] + [f"f{i}" for i in range(20)]
    assert sorted(os.listdir(m.path / "w")) == sorted(names)
    etcd.ctl("del", "/w/keep")
    rev = revision(etcd)
    wait_for(lambda: m.stats()["watch_revision"] >= rev, 30, "the delete to arrive")
    s0 = settled_stats(m)
    sh("echo x > w/g", m.path)
    assert delta(s0, m.stats(), *RT)["rt_total"] == 2  # the lookup of the new name, the write


def test_a_directory_changed_elsewhere_under_many_names_is_read_again(etcd, mount):
    """The names changed elsewhere that a listing stops vouching for are bounded (1,024): past
    them the listing goes, and a new name costs its lookup again."""
    etcd.ctl("put", "/w/first", "1")
    m = mount(etcd, options=WATCH)
    assert os.listdir(m.path / "w") == ["first"]
    c = etcd.client()
    try:
        for i in range(1025):
            c.put(f"/w/r{i:04d}", b"x")
    finally:
        c.close()
    wait_for(lambda: os.path.exists(m.path / "w" / "r1024"), 30, "the last create to arrive")
    s0 = settled_stats(m)
    sh("echo new > w/new", m.path)
    d = delta(s0, m.stats(), *RT)
    assert d["rt_total"] == 2, d  # the lookup of the new name, then the write
    assert len(os.listdir(m.path / "w")) == 1027


def test_cp_of_new_files_is_a_create_and_a_put_each_in_watch_mode(etcd, mount, tmp_path):
    """cp creates each file with O_EXCL (a Txn decided by etcd, exclusive across hosts), then
    writes it: two round trips per file, however many files the directory holds."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(30):
        (src / f"f{i}").write_bytes(b"%d" % i * 100)
    m = mount(etcd, options=WATCH)
    os.listdir(m.path)  # the root is known: the name "copy" is proved absent too
    rev0, s0 = revision(etcd), m.stats()
    subprocess.run(["cp", "-r", str(src), str(m.path / "copy")], check=True)
    s1 = m.stats()
    d = delta(s0, s1, *RT)
    # mkdir: one Txn; each file: the exclusive create and the Put of its content
    assert revision(etcd) - rev0 == 1 + 2 * 30
    assert d["rt_total"] == 1 + 2 * 30, d
    c = etcd.client()
    try:
        assert c.get("/copy/f29")[0] == b"29" * 100
    finally:
        c.close()


def test_listed_files_cost_no_second_copy_of_their_values(etcd, mount):
    """Close-to-open: a listing holds the values of the files it shows; the nodes of files only
    listed keep size and revision, not a second copy (memory per cached key, issue 15). Opening
    one takes its value from the listing (the compare confirms it: no value transfer), and only
    then does the node hold it."""
    fill(etcd, [(f"/mv/k{i}", "v" * 900) for i in range(50)])
    m = mount(etcd, options=LONG_CACHE)
    s0 = m.stats()
    for _ in range(2):  # the second listing finds them unchanged: they stay unread
        subprocess.run(["ls", "-l", str(m.path / "mv")], check=True, stdout=subprocess.DEVNULL)
    s1 = m.stats()
    assert s1["cache_value_bytes"] - s0["cache_value_bytes"] < 900, (s0, s1)
    for i in range(5):
        assert (m.path / "mv" / f"k{i}").read_text() == "v" * 900
    s2 = m.stats()
    d = delta(s1, s2, "rt_total", "rt_range", "cache_open_hit", "cache_value_bytes")
    assert d["rt_total"] == 5 and d["rt_range"] == 0 and d["cache_open_hit"] == 5, d
    assert 5 * 900 <= d["cache_value_bytes"] < 10 * 900, d


def test_renames_and_truncates_of_listed_files_transfer_no_value(etcd, kv, mount):
    """Close-to-open: a file only listed keeps no value of its own; rename, RENAME_EXCHANGE and
    truncate, which need its bytes, take them from the directory's listing (revision-checked by
    etcd in the same request) instead of reading each key, even after an earlier change in the
    directory made that listing stop describing it. Each step is then the round trips it needed
    before the node stopped keeping a copy, and etcd ends up with the right bytes."""
    fill(etcd, [(f"/rx/{k}", f"value of {k}") for k in ("a", "x", "y", "t", "c")])
    m = mount(etcd, options=LONG_CACHE)
    d = m.path / "rx"
    subprocess.run(["ls", "-l", str(d)], check=True, stdout=subprocess.DEVNULL)
    steps = (
        ("mv", lambda: os.rename(d / "a", d / "a2"), 2),
        ("exchange", lambda: renameat2(d / "x", d / "y", RENAME_EXCHANGE), 1),
        ("truncate", lambda: os.truncate(d / "t", 3), 1),
        ("cat", lambda: (d / "c").read_bytes(), 1),
    )
    for what, step, rts in steps:
        s0 = m.stats()
        step()
        got = delta(s0, m.stats(), "rt_total", "rt_range")
        assert got == {"rt_total": rts, "rt_range": 0}, (what, got)
    want = {"a2": b"value of a", "x": b"value of y", "y": b"value of x", "t": b"val",
            "c": b"value of c"}
    assert {k: kv.get(f"/rx/{k}")[0] for k in want} == want
    assert kv.get("/rx/a")[0] is None


@pytest.mark.parametrize("options", [LONG_CACHE, WATCH], ids=["close-to-open", "watch"])
def test_rm_r_is_one_round_trip_per_file(etcd, mount, options):
    """rm -r of a directory's files: each unlink is one Txn that proves the directory stays
    with one key still below it (not a compare over the whole directory, which etcd reads key
    by key: O(N^2) for the whole rm), and an unlink keeps the directory's listing, so rm's
    lookup of the next name needs no round trip. The last unlink leaves the directory's marker
    until rmdir."""
    n = 300
    fill(etcd, [(f"/rm/d/f{i:04d}", "x") for i in range(n)])
    etcd.ctl("put", "/rm/keep", "k")
    m = mount(etcd, options=options)
    rev0, s0 = revision(etcd), m.stats()
    sh("rm -r d", m.path / "rm")
    d = delta(s0, m.stats(), *RT)
    assert revision(etcd) - rev0 == n + 1  # n deletes (the last one with the marker), rmdir
    # n unlinks and a few more, whatever n: the lookups of rm and d, the listing's pages and
    # read-ahead, the rmdir (one Txn: the last unlink told it the marker's revision);
    # before, each of rm's lookups after the first unlink was a round trip too (2n)
    assert n + 1 <= d["rt_total"] <= n + 12, d
    assert etcd.ctl("get", "--prefix", "--keys-only", "/rm/").split() == ["/rm/keep"]


@pytest.mark.parametrize("options", [LONG_CACHE, WATCH], ids=["close-to-open", "watch"])
@pytest.mark.parametrize("empty_by", ["rm", "mv", "rmdir"])
def test_rmdir_after_the_last_entry_went_is_one_round_trip(etcd, mount, options, empty_by):
    """The operation that took a directory's last entry wrote its marker, and this mount knows
    at which revision: the rmdir that follows guesses the marker right (one Txn, not a failed
    compare and a retry), whether the entries went by unlink, by a rename out or by rmdir."""
    names = [f"e{i}" for i in range(5)]
    if empty_by == "rmdir":
        fill(etcd, [(f"/rd/d/{k}/", "") for k in names])
    else:
        fill(etcd, [(f"/rd/d/{k}", "x") for k in names])
    etcd.ctl("put", "/rd/out/", "")
    m = mount(etcd, options=options)
    top = m.path / "rd"
    os.listdir(top / "d")
    for k in names:
        if empty_by == "rm":
            os.unlink(top / "d" / k)
        elif empty_by == "mv":
            os.rename(top / "d" / k, top / "out" / k)
        else:
            os.rmdir(top / "d" / k)
    assert etcd.ctl("get", "--prefix", "--keys-only", "/rd/d").split() == ["/rd/d/"]  # its marker
    s0 = m.stats()
    os.rmdir(top / "d")
    assert delta(s0, m.stats(), "rt_total") == {"rt_total": 1}
    assert etcd.ctl("get", "--prefix", "--keys-only", "/rd/d").split() == []

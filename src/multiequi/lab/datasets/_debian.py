"""Data files from Debian packages, fetched into multiequi's cache when the package is not installed.

Several data sets the lab reads are packaged by Debian (Jane Austen's novels in
``r-cran-janeaustenr``, Fashion-MNIST in ``dataset-fashion-mnist``). :func:`debian_files` finds
their files where the installed package puts them, else in multiequi's cache, else downloads the
package with ``apt-get download`` (no root needed, nothing installed), unpacks it with
``dpkg-deb -x`` into a temporary folder and copies the files into the cache atomically (a reader
never sees a half-written cache folder; two processes fetching at once both end with a complete
one).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath

from multiequi.hf import cache_folder, check_cache, write_folder_atomically

__all__ = ["apt_extract", "debian_files", "member_names"]


def member_names(members: Mapping[str, str] | Sequence[str]) -> dict[str, str]:
    """``{file name in the folder: path inside the package}`` from either form of ``members``.

    A mapping is taken as is; a sequence of paths inside the package keeps each file's base name.
    Paths are relative to the package's root (``usr/share/...``; a leading ``/`` is dropped).

    Examples
    --------
    >>> member_names(["usr/share/data/a.gz", "/usr/share/data/b.gz"])
    {'a.gz': 'usr/share/data/a.gz', 'b.gz': 'usr/share/data/b.gz'}
    >>> member_names({"x.bin": "usr/lib/pkg/data/x.bin"})
    {'x.bin': 'usr/lib/pkg/data/x.bin'}
    """
    if isinstance(members, Mapping):
        pairs = [(str(name), str(path)) for name, path in members.items()]
    elif isinstance(members, (str, bytes)):
        raise TypeError("members must be a list of paths inside the package or a {name: path} mapping, not a string")
    else:
        pairs = [(PurePosixPath(str(path)).name, str(path)) for path in members]
    out: dict[str, str] = {}
    for name, path in pairs:
        rel = str(PurePosixPath(path)).lstrip("/")
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"invalid file name {name!r} for the package member {path!r}")
        if name in out:
            raise ValueError(f"two package members would be copied to the same file name {name!r}")
        if not rel or ".." in PurePosixPath(rel).parts:
            raise ValueError(f"invalid path inside a package: {path!r}")
        out[name] = rel
    if not out:
        raise ValueError("members is empty: name at least one file of the package")
    return out


def apt_extract(package: str, members: Mapping[str, str] | Sequence[str], target: Path) -> None:
    """``apt-get download`` Debian's ``package`` into a temporary folder, unpack it with
    ``dpkg-deb -x`` and copy ``members`` (see :func:`member_names`) into the folder ``target``.

    When the download fails and this process runs as root, the package lists are refreshed once
    (``apt-get update``: a fresh container may have none) and the download retried.

    Raises
    ------
    FileNotFoundError
        When apt-get or dpkg-deb is missing, the download fails (the message ends with apt's
        reason) or the package lacks one of the members.
    subprocess.SubprocessError
        When ``dpkg-deb`` fails or a command times out.
    """
    names = member_names(members)
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise FileNotFoundError("apt-get and dpkg-deb are not available")
    with tempfile.TemporaryDirectory(prefix=f"multiequi-{package}-") as tmp:
        work = Path(tmp)

        def download() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["apt-get", "download", package], cwd=work, capture_output=True, text=True, timeout=600
            )

        done = download()
        if done.returncode != 0 and hasattr(os, "geteuid") and os.geteuid() == 0:
            # the package lists may be missing (a fresh container): refresh them once, as root
            subprocess.run(["apt-get", "update"], capture_output=True, text=True, timeout=600)
            done = download()
        debs = sorted(work.glob(f"{package}_*.deb"))
        if done.returncode != 0 or not debs:
            reason = " ".join((done.stderr or done.stdout).split())[-300:]
            raise FileNotFoundError(f"apt-get download {package} failed: {reason}")
        unpacked = work / "x"
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], check=True, capture_output=True, timeout=600)
        for name, rel in names.items():
            source = unpacked / rel
            if not source.is_file():
                raise FileNotFoundError(f"Debian's {package} ({debs[0].name}) has no file /{rel}")
            shutil.copyfile(source, target / name)


def debian_files(
    package: str,
    members: Mapping[str, str] | Sequence[str],
    folder_name: str,
    system_dir: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
    fetch: bool = True,
    *,
    what: str | None = None,
    download: Callable[[Path], None] | None = None,
) -> Path:
    """The folder holding the data files of Debian's ``package``, fetched into the cache if need be.

    Looks, in order, in ``system_dir`` (where ``apt-get install <package>`` puts the files), in
    multiequi's cache ``cache_dir/folder_name`` (``cache_dir`` defaults to ``$MULTIEQUI_CACHE``,
    else ``~/.cache/multiequi``), and otherwise, when ``fetch``, downloads the package
    (:func:`apt_extract`) and copies the files into that cache folder atomically, once.

    Parameters
    ----------
    package : str
        Debian's package name, e.g. ``"dataset-fashion-mnist"``.
    members : dict of str to str, or list of str
        The files: ``{name in the folder: path inside the package}``, or the paths inside the
        package (``usr/share/...``), each kept under its base name.
    folder_name : str
        The cache's sub-folder for this package.
    system_dir : path
        Where the installed package keeps the files (under their names).
    cache_dir : path, optional
        Root of multiequi's cache.
    fetch : bool
        Download the package when the files are nowhere (``False``: raise instead).
    what : str, optional
        How error messages name the data (default ``"the data files of Debian's <package>"``).
    download : callable, optional
        ``download(target)`` writes the files into the new folder ``target``; default
        :func:`apt_extract` of ``package`` (tests pass a fake).

    Returns
    -------
    Path
        ``system_dir`` or the cache folder, holding every file.

    Raises
    ------
    FileNotFoundError
        When the files are nowhere and cannot be fetched (or ``fetch=False``); the message names
        the folders searched and ``apt-get install <package>``.
    FileExistsError
        When the cache folder exists but lacks files (a broken cache: remove it).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> def fake(target):  # what apt_extract would do, offline
    ...     _ = (target / "a.txt").write_text("hello")
    >>> folder = debian_files("pkg", ["usr/share/pkg/a.txt"], "pkg", tmp / "system", tmp / "cache", download=fake)
    >>> folder == tmp / "cache" / "pkg", (folder / "a.txt").read_text()
    (True, 'hello')
    >>> debian_files("pkg", ["usr/share/pkg/a.txt"], "pkg", tmp / "system", tmp / "cache", fetch=False) == folder
    True
    """
    names = tuple(member_names(members))
    system = Path(system_dir)
    if all((system / f).is_file() for f in names):
        return system
    folder = cache_folder(cache_dir, folder_name)
    if check_cache(folder, names):
        return folder
    what = what or f"the data files of Debian's {package} ({', '.join(names)})"
    searched = f"searched {system} and {folder}"
    if not fetch:
        raise FileNotFoundError(f"{what} not found ({searched}): install them with 'apt-get install {package}'")
    writer = download if download is not None else (lambda target: apt_extract(package, members, target))
    try:
        write_folder_atomically(folder, names, writer)
    except (OSError, subprocess.SubprocessError) as err:
        reason = " ".join(str(err).split())
        raise FileNotFoundError(
            f"{what} not found ({searched}) and could not be fetched ({reason}): install them with "
            f"'apt-get install {package}' (or put the files in {folder})"
        ) from err
    return folder

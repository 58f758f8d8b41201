// Package filesync installs rendered configuration files durably and runs
// the commands that go with them. It is the only package that runs commands.
//
// Syncer.Sync follows one recipe for every file:
//
//  1. compare the rendered bytes, mode and owner with the destination; when
//     nothing differs, do nothing at all (no stage file, no commands, the
//     destination's mtime is untouched);
//  2. in noop mode, return a unified diff and stop;
//  3. write a stage file ".<base>.<random>" in the destination's directory
//     with mode 0600: a new file, or a file that an earlier install
//     replaced at this destination, written over (see step 6);
//  4. run check_cmd against the stage file ({{.src}});
//  5. chown, then chmod the stage file to the wanted owner and mode, and
//     fsync it;
//  6. give the destination a second name next to the stage file and
//     rename the stage file over the destination. In the background,
//     once for a run of renames into the directory (50 ms after the
//     first, or after 16; Syncer.Wait does it at once and waits for it),
//     fsync the directory and remove the second names. The file replaced
//     is kept for up to a second instead when this Syncer installed it:
//     once the directory's fsync has made its replacement durable, the
//     next install at the destination writes over it in step 3, provided
//     nothing has it open and no other name links to it. A rename that
//     dropped the old file's last name would free its blocks there and
//     then, and freeing blocks takes milliseconds on some disks (those
//     mounted with discard) and holds up every fsync meanwhile; a run of
//     changes writes over the same few files by turns and frees none;
//  7. run reload_cmd.
//
// A failure before step 6 leaves the destination untouched and removes the
// stage file. The first sync of a destination (not in noop or check mode)
// removes the second names of step 6 that an earlier process, stopped
// before its background work, left next to it. Replaced files are written
// over only on Linux, on ext2/3/4, XFS, Btrfs and tmpfs, where a lease
// tells whether any process has the file open and a directory's fsync is
// real; elsewhere, or where leases cannot be had or a directory's fsync
// failed, they are removed. Commands run through /bin/sh -c in their own process group; a
// timeout or a cancelled context kills the whole group.
//
// The package works on Unix systems only. It may import only the standard
// library, github.com/sirupsen/logrus and github.com/aymanbagabas/go-udiff.
package filesync

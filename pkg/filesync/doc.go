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
//     with mode 0600;
//  4. run check_cmd against the stage file ({{.src}});
//  5. chown, then chmod the stage file to the wanted owner and mode, and
//     fsync it;
//  6. give the destination a second name next to the stage file, rename
//     the stage file over the destination, then remove that second name
//     and fsync the directory in the background, once for a run of
//     renames into the directory (50 ms after the first; Syncer.Wait does
//     it at once and waits for it): a rename that dropped the old file's
//     last name would free its blocks there and then, which takes
//     milliseconds, and each removal and directory fsync makes the file
//     system commit its journal, which other fsyncs wait for;
//  7. run reload_cmd.
//
// A failure before step 6 leaves the destination untouched and removes the
// stage file. The first sync of a destination (not in noop or check mode)
// removes the second names of step 6 that an earlier process, stopped
// before its background work, left next to it. Commands run through
// /bin/sh -c in their own process group; a timeout or a cancelled context
// kills the whole group.
//
// The package works on Unix systems only. It may import only the standard
// library, github.com/sirupsen/logrus and github.com/aymanbagabas/go-udiff.
package filesync

// Package syncio has writers that many goroutines may use at once: a
// Writer that serialises writes to another writer, and a Buffer that
// collects writes and may be read while it is written to. Programs that
// copy the output of child processes (os/exec copies each in a goroutine
// of its own) into one place, and tests that read logs while they are
// written, use them.
//
// syncio may import only the standard library.
package syncio

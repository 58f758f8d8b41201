package kv

import (
	"fmt"
	"testing"
)

func benchSnapshot(n int) *Snapshot {
	b := NewBuilder()
	for i := 0; i < n; i++ {
		b.Put(fmt.Sprintf("/app/servers/srv-%d", i), fmt.Sprintf("10.0.%d.%d:8080", i/256%256, i%256))
	}
	for s := 0; s < 100; s++ {
		for i := 0; i < n/100; i++ {
			b.Put(fmt.Sprintf("/svc/s%d/%d", s, i), "v")
		}
	}
	return b.Build(1)
}

func BenchmarkBuild100k(b *testing.B) {
	keys := make([]string, 100000)
	for i := range keys {
		keys[i] = fmt.Sprintf("/app/servers/srv-%06d", i)
	}
	b.ReportAllocs()
	for b.Loop() {
		bl := NewBuilder()
		for _, k := range keys {
			bl.Put(k, "10.0.0.1:80")
		}
		bl.Build(1)
	}
}

func BenchmarkGetValue100k(b *testing.B) {
	v := benchSnapshot(100000).All()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := v.GetValue(fmt.Sprintf("/app/servers/srv-%d", i%100000)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkGetAll100k(b *testing.B) {
	v := benchSnapshot(100000).All()
	b.ReportAllocs()
	for b.Loop() {
		pairs, err := v.GetAll("/app/servers/*")
		if err != nil || len(pairs) != 100000 {
			b.Fatal(len(pairs), err)
		}
	}
}

// BenchmarkGetAllChanged100k lists a snapshot that 5,000 changes were
// applied to, as the watch of a busy keyspace sees between compactions.
func BenchmarkGetAllChanged100k(b *testing.B) {
	s := benchSnapshot(100000)
	changes := make([]Change, 5000)
	for i := range changes {
		changes[i] = Change{Key: fmt.Sprintf("/app/servers/srv-%d", i*19), Value: "changed"}
	}
	v := s.Apply(2, changes).All()
	b.ReportAllocs()
	for b.Loop() {
		pairs, err := v.GetAll("/app/servers/*")
		if err != nil || len(pairs) != 100000 {
			b.Fatal(len(pairs), err)
		}
	}
}

// BenchmarkGetAllDirsChangedElsewhere100k lists the 100 directories under
// /svc of a snapshot that one change in each directory and 5,000 under
// /app/servers were applied to, as a directory template does in a daemon
// whose other keys change too.
func BenchmarkGetAllDirsChangedElsewhere100k(b *testing.B) {
	s := benchSnapshot(100000)
	changes := make([]Change, 5000, 5100)
	for i := range changes {
		changes[i] = Change{Key: fmt.Sprintf("/app/servers/srv-%d", i*19), Value: "changed"}
	}
	for d := range 100 {
		changes = append(changes, Change{Key: fmt.Sprintf("/svc/s%d/%d", d, d), Value: "changed"})
	}
	v := s.Apply(2, changes).All()
	dirs := make([]string, 100)
	for i := range dirs {
		dirs[i] = fmt.Sprintf("/svc/s%d/*", i)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, d := range dirs {
			if pairs, err := v.GetAll(d); err != nil || len(pairs) != 1000 {
				b.Fatal(len(pairs), err)
			}
		}
	}
}

// BenchmarkGetAllOneChange100k lists a snapshot that one change was
// applied to, as the watch sees after a single put.
func BenchmarkGetAllOneChange100k(b *testing.B) { benchGetAllOneChange(b, nil) }

// BenchmarkGetAllOneChange100kLists is BenchmarkGetAllOneChange100k as a
// daemon's renders list: in the memory of the lists before.
func BenchmarkGetAllOneChange100kLists(b *testing.B) { benchGetAllOneChange(b, &Lists{}) }

// benchGetAllOneChange lists in lists' memory when lists is not nil.
func benchGetAllOneChange(b *testing.B, lists *Lists) {
	v := benchSnapshot(100000).Apply(2, []Change{{Key: "/app/servers/srv-500", Value: "changed"}}).All()
	if lists != nil {
		v.ReuseLists(lists)
	}
	b.ReportAllocs()
	for b.Loop() {
		pairs, err := v.GetAll("/app/servers/*")
		if err != nil || len(pairs) != 100000 {
			b.Fatal(len(pairs), err)
		}
		if lists != nil {
			lists.Reset()
		}
	}
}

func BenchmarkListDir100k(b *testing.B) {
	v := benchSnapshot(100000).All()
	b.ReportAllocs()
	for b.Loop() {
		if dirs := v.ListDir("/svc"); len(dirs) != 100 {
			b.Fatal(len(dirs))
		}
	}
}

func BenchmarkApplyOneChange100k(b *testing.B) {
	s := benchSnapshot(100000)
	b.ReportAllocs()
	rev := int64(1)
	for b.Loop() {
		rev++
		s = s.Apply(rev, []Change{{Key: "/app/servers/srv-5", Value: fmt.Sprint(rev)}})
	}
}

func BenchmarkBuildUnsorted100k(b *testing.B) {
	m := make(map[string]string, 100000)
	for i := range 100000 {
		m[fmt.Sprintf("/app/servers/srv-%06d", i)] = "10.0.0.1:80"
	}
	b.ReportAllocs()
	for b.Loop() {
		if s := FromMap(1, m); s.Len() != len(m) {
			b.Fatal(s.Len())
		}
	}
}

func BenchmarkExists100k(b *testing.B) {
	v := benchSnapshot(100000).All()
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("/app/servers/srv-%d", i*97)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if !v.Exists(keys[i%len(keys)]) {
			b.Fatal(keys[i%len(keys)])
		}
		i++
	}
}

func BenchmarkList100k(b *testing.B) {
	v := benchSnapshot(100000).All()
	b.ReportAllocs()
	for b.Loop() {
		if names := v.List("/app/servers"); len(names) != 100000 {
			b.Fatal(len(names))
		}
	}
}

// BenchmarkApplyBurst100k derives 1,000 snapshots one change at a time, as
// the watch of a burst of puts does, and reads a key of each.
func BenchmarkApplyBurst100k(b *testing.B) {
	base := benchSnapshot(100000)
	b.ReportAllocs()
	for b.Loop() {
		s := base
		for i := range 1000 {
			s = s.Apply(s.Revision()+1, []Change{{Key: fmt.Sprintf("/app/servers/srv-%d", i*97), Value: "changed"}})
		}
		if v, _ := s.Lookup("/app/servers/srv-0"); v != "changed" {
			b.Fatal(v)
		}
	}
}

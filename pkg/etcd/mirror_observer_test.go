package etcd

import (
	"sync"
)

// stateRecorder is a MirrorObserver that records what it is told.
type stateRecorder struct {
	mu          sync.Mutex
	states      []bool
	revision    int64
	reconnects  int
	compactions int
	failures    int
}

func (s *stateRecorder) State(up bool, _ error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.states = append(s.states, up)
}

func (s *stateRecorder) Revision(rev int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revision = rev
}

func (s *stateRecorder) Reconnected() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reconnects++
}

func (s *stateRecorder) Compacted() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.compactions++
}

func (s *stateRecorder) Failed(error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures++
}

package k8sdist

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progressEvery is the interval of "still building" lines: often enough to
// show a CI log is alive, rarely enough not to flood it.
const progressEvery = 30 * time.Second

// logMu serializes lines from concurrent acquisitions that share one writer.
var logMu sync.Mutex

// logf writes one progress line to w.
func logf(w io.Writer, format string, args ...any) {
	if w == nil {
		return
	}
	logMu.Lock()
	defer logMu.Unlock()
	fmt.Fprintf(w, format+"\n", args...)
}

// startProgress prints what a long step is doing every progressEvery until
// the returned function is called; that function returns the elapsed time.
func startProgress(w io.Writer, what string) (stop func() time.Duration) {
	start := time.Now()
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				logf(w, "still %s (%s elapsed)", what, time.Since(start).Round(time.Second))
			case <-done:
				return
			}
		}
	}()
	return func() time.Duration {
		close(done)
		<-finished
		return time.Since(start)
	}
}

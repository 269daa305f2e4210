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
	end := ticking(progressEvery, func() {
		logf(w, "still %s (%s elapsed)", what, time.Since(start).Round(time.Second))
	})
	return func() time.Duration {
		end()
		return time.Since(start)
	}
}

// ticking calls tick every interval until the returned function is called;
// once that returns, tick runs no more.
func ticking(interval time.Duration, tick func()) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				tick()
			case <-done:
				return
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// Package load saturates this machine's cores, for the tests of how vmatrix
// behaves on a busy CI runner.
package load

import (
	"os/exec"
	"sync"
	"time"

	"github.com/vmatrix/vmatrix/internal/proc"
)

// Spin starts n processes that spin on a core each for at most limit; stop
// ends them sooner. Each loop is this process's own child, so it dies with
// this process even when that is killed (a wrapper such as timeout(1) would
// leave its child behind), and is ended from here after limit.
func Spin(n int, limit time.Duration) (stop func(), err error) {
	var (
		mu    sync.Mutex
		loops []*proc.Process
	)
	stop = func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range loops {
			p.Stop(0)
		}
		loops = nil
	}
	for i := 0; i < n; i++ {
		p, err := proc.StartCmd("busy loop", exec.Command("sh", "-c", "while :; do :; done"))
		if err != nil {
			stop()
			return nil, err
		}
		loops = append(loops, p)
	}
	time.AfterFunc(limit, stop)
	return stop, nil
}

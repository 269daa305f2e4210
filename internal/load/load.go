// Package load saturates this machine's cores, for the tests of how vmatrix
// behaves on a busy CI runner.
package load

import (
	"fmt"
	"os/exec"
	"time"

	"github.com/vmatrix/vmatrix/internal/proc"
)

// Spin starts n processes that spin on a core each for at most limit (they
// end by themselves then, and die with this process); stop ends them sooner.
func Spin(n int, limit time.Duration) (stop func(), err error) {
	var loops []*proc.Process
	stop = func() {
		for _, p := range loops {
			p.Stop(0)
		}
	}
	for i := 0; i < n; i++ {
		cmd := exec.Command("timeout", fmt.Sprint(int(limit.Seconds())), "sh", "-c", "while :; do :; done")
		p, err := proc.StartCmd("busy loop", cmd)
		if err != nil {
			stop()
			return nil, err
		}
		loops = append(loops, p)
	}
	return stop, nil
}

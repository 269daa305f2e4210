package controlplane

import (
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"sync"
)

// nodeBound are the controllers that need real nodes or volumes attached to them,
// under both the short names of older releases and the "-controller" names of
// newer ones. A virtual cluster runs without them; its host does that work.
var nodeBound = map[string]bool{
	"nodeipam": true, "node-ipam-controller": true,
	"nodelifecycle": true, "node-lifecycle-controller": true,
	"cloud-node-lifecycle": true, "cloud-node-lifecycle-controller": true,
	"persistentvolume-binder": true, "persistentvolume-binder-controller": true,
	"attachdetach": true, "persistentvolume-attach-detach-controller": true,
	"persistentvolume-expander": true, "persistentvolume-expander-controller": true,
	"ttl": true, "ttl-controller": true,
}

var (
	controllersMu    sync.Mutex
	controllersCache = map[string][]string{}
	allControllersRE = regexp.MustCompile(`All controllers: ([^\n]*)`)
)

// knownControllers reads the controller names a kube-controller-manager binary
// knows from its --help. Names differ between releases, and an unknown name in
// --controllers makes the process exit.
func knownControllers(binary string) ([]string, error) {
	controllersMu.Lock()
	defer controllersMu.Unlock()
	if names, ok := controllersCache[binary]; ok {
		return names, nil
	}
	out, _ := exec.Command(binary, "--help").CombinedOutput()
	m := allControllersRE.FindSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("%s --help lists no controllers: is it a kube-controller-manager?", binary)
	}
	var names []string
	for _, n := range strings.Split(string(m[1]), ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	controllersCache[binary] = names
	return names, nil
}

// controllerFlag is the --controllers value: the default set, less the
// node-bound controllers this binary knows unless they are wanted.
func controllerFlag(known []string, nodeControllers bool) string {
	parts := []string{"*"}
	if !nodeControllers {
		for _, n := range known {
			if nodeBound[n] {
				parts = append(parts, "-"+n)
			}
		}
	}
	return strings.Join(parts, ",")
}

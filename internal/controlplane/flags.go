package controlplane

import (
	"fmt"
	"strings"
)

// Flags are extra flags of a control plane's components, as a user gives
// them for a cluster: on the CLI, per version in vmatrix.yaml, or through the
// framework. They come after vmatrix's own flags, so they override them.
type Flags struct {
	APIServer         []string `json:"apiserver,omitempty"`
	ControllerManager []string `json:"controllerManager,omitempty"`
}

// Add returns f with featureGates ("A=true,B=false", given to both
// components) and runtimeConfig (the apiserver's "api/alpha=true,...") as
// flags; "" adds nothing.
func (f Flags) Add(featureGates, runtimeConfig string) Flags {
	out := Flags{APIServer: append([]string{}, f.APIServer...), ControllerManager: append([]string{}, f.ControllerManager...)}
	if featureGates != "" {
		out.APIServer = append(out.APIServer, "--feature-gates="+featureGates)
		out.ControllerManager = append(out.ControllerManager, "--feature-gates="+featureGates)
	}
	if runtimeConfig != "" {
		out.APIServer = append(out.APIServer, "--runtime-config="+runtimeConfig)
	}
	return out
}

// Merge returns f followed by g: g's flags win where both set one.
func (f Flags) Merge(g Flags) Flags {
	return Flags{
		APIServer:         append(append([]string{}, f.APIServer...), g.APIServer...),
		ControllerManager: append(append([]string{}, f.ControllerManager...), g.ControllerManager...),
	}
}

// Validate refuses what cannot be a flag before anything starts; whether the
// component knows the flag, only the component can say.
func (f Flags) Validate() error {
	for comp, flags := range map[string][]string{"kube-apiserver": f.APIServer, "kube-controller-manager": f.ControllerManager} {
		for _, a := range flags {
			if !strings.HasPrefix(a, "--") || len(a) < 3 {
				return fmt.Errorf("%s flag %q: flags start with -- (--name=value)", comp, a)
			}
		}
	}
	return nil
}

// Package dashboards copies go-libp2p's Grafana dashboards out of the module
// directory and fixes up the ones that hard-code a datasource UID, so that
// every copy works under Grafana's file provisioning. It rewrites only the
// quoted UID strings and leaves every other byte as upstream wrote it, so a
// diff against the module shows exactly what was changed.
package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// DatasourceUID is the UID of the Prometheus datasource provisioned by
// configs/grafana/provisioning/datasources/prometheus.yml.
const DatasourceUID = "icn-prometheus"

// IsBuiltin reports whether uid names one of Grafana's own datasources.
func IsBuiltin(uid string) bool {
	switch uid {
	case "-- Grafana --", "grafana", "-- Mixed --", "-- Dashboard --":
		return true
	}
	return false
}

// Ref is one datasource reference in a dashboard: a panel's or target's
// datasource, or the current value of a datasource template variable.
type Ref struct {
	UID string
	// Variable is set when the reference is a datasource variable's current
	// value (the variable's name).
	Variable string
}

// Dashboard is what a check needs of a dashboard's JSON.
type Dashboard struct {
	Refs []Ref
	// DatasourceVars maps each datasource-type template variable to its
	// plugin query ("prometheus").
	DatasourceVars map[string]string
}

// Parse collects the datasource references of a dashboard.
func Parse(src []byte) (Dashboard, error) {
	var doc any
	if err := json.Unmarshal(src, &doc); err != nil {
		return Dashboard{}, fmt.Errorf("dashboard is not valid JSON: %w", err)
	}
	d := Dashboard{DatasourceVars: map[string]string{}}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ds, ok := v["datasource"]; ok {
				switch ds := ds.(type) {
				case map[string]any:
					if uid, ok := ds["uid"].(string); ok {
						d.Refs = append(d.Refs, Ref{UID: uid})
					}
				case string: // the older form: a datasource name or variable
					d.Refs = append(d.Refs, Ref{UID: ds})
				}
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(doc)
	if m, ok := doc.(map[string]any); ok {
		if tm, ok := m["templating"].(map[string]any); ok {
			list, _ := tm["list"].([]any)
			for _, item := range list {
				tv, ok := item.(map[string]any)
				if !ok || tv["type"] != "datasource" {
					continue
				}
				name, _ := tv["name"].(string)
				q, _ := tv["query"].(string)
				d.DatasourceVars[name] = q
				if cur, ok := tv["current"].(map[string]any); ok {
					if val, ok := cur["value"].(string); ok && val != "" {
						d.Refs = append(d.Refs, Ref{UID: val, Variable: name})
					}
				}
			}
		}
	}
	return d, nil
}

// IsVariable reports whether uid is a template reference ($x or ${x}) and
// returns the variable's name.
func IsVariable(uid string) (string, bool) {
	if !strings.HasPrefix(uid, "$") {
		return "", false
	}
	name := strings.TrimPrefix(uid, "$")
	if strings.HasPrefix(name, "{") && strings.HasSuffix(name, "}") {
		name = name[1 : len(name)-1]
	}
	return name, name != ""
}

// Fixup replaces every hard-coded datasource UID in a dashboard (one that is
// neither a template variable nor one of Grafana's own) with uid. It returns
// the UIDs it replaced, sorted; none means src comes back unchanged.
func Fixup(src []byte, uid string) ([]byte, []string, error) {
	d, err := Parse(src)
	if err != nil {
		return nil, nil, err
	}
	seen := map[string]bool{}
	for _, r := range d.Refs {
		if _, v := IsVariable(r.UID); v || IsBuiltin(r.UID) || r.UID == uid {
			continue
		}
		seen[r.UID] = true
	}
	replaced := make([]string, 0, len(seen))
	for u := range seen {
		replaced = append(replaced, u)
	}
	sort.Strings(replaced)
	out := src
	for _, u := range replaced {
		from, _ := json.Marshal(u)
		to, _ := json.Marshal(uid)
		out = bytes.ReplaceAll(out, from, to)
	}
	return out, replaced, nil
}

// Render reads every <name>/<name>.json under srcDir (go-libp2p's
// dashboards/ directory) and returns the fixed-up copies keyed by file name
// (<name>.json), with the UIDs replaced in each.
func Render(srcDir, uid string) (map[string][]byte, map[string][]string, error) {
	files, err := filepath.Glob(filepath.Join(srcDir, "*", "*.json"))
	if err != nil {
		return nil, nil, err
	}
	if len(files) == 0 {
		return nil, nil, fmt.Errorf("no dashboards in %s: is it go-libp2p's dashboards/ directory? (go mod download github.com/libp2p/go-libp2p)", srcDir)
	}
	out := map[string][]byte{}
	fixed := map[string][]string{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, err
		}
		b, rep, err := Fixup(src, uid)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", f, err)
		}
		name := filepath.Base(f)
		if _, dup := out[name]; dup {
			return nil, nil, fmt.Errorf("two dashboards named %s under %s", name, srcDir)
		}
		out[name] = b
		if len(rep) > 0 {
			fixed[name] = rep
		}
	}
	return out, fixed, nil
}

// Sync writes the rendered dashboards into dstDir and removes any other
// .json file there, so a dashboard dropped upstream goes away here too.
func Sync(srcDir, dstDir, uid string) (map[string][]string, error) {
	out, fixed, err := Render(srcDir, uid)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dstDir, 0o755); err != nil {
		return nil, err
	}
	old, err := filepath.Glob(filepath.Join(dstDir, "*.json"))
	if err != nil {
		return nil, err
	}
	for _, f := range old {
		if _, keep := out[filepath.Base(f)]; !keep {
			if err := os.Remove(f); err != nil {
				return nil, err
			}
		}
	}
	for name, b := range out {
		if err := os.WriteFile(filepath.Join(dstDir, name), b, 0o644); err != nil {
			return nil, err
		}
	}
	return fixed, nil
}

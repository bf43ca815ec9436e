package definitions

import "fmt"

// Cluster is a parsed cluster morph: a list of systems and how to deploy
// each. distbuild builds; it does not deploy, so of a cluster it keeps
// only which systems to build. The deploy settings are still checked to be
// mappings, so a cluster that morph would refuse to deploy is not accepted
// silently.
type Cluster struct {
	File        string
	Name        string
	Description string
	// Systems lists every system of the cluster, each subsystem after
	// the system that holds it, in the order written.
	Systems []ClusterSystem
}

// ClusterSystem is one system a cluster deploys, at any depth of
// subsystems.
type ClusterSystem struct {
	// Morph is the system morph's path in the definitions tree.
	Morph string
	Line  int
}

var (
	clusterFields       = fieldSet("name", "kind", "description", "systems")
	clusterSystemFields = fieldSet("morph", "deploy-defaults", "deploy", "subsystems")
)

// maxSubsystemDepth bounds the nesting of subsystems; real clusters nest
// one level (an initramfs inside a system).
const maxSubsystemDepth = 10

// ParseCluster parses a cluster morph's content; file names it in errors.
func ParseCluster(file string, data []byte) (*Cluster, error) {
	m, _, err := parseMorph(file, data, "cluster")
	if err != nil {
		return nil, err
	}
	return clusterFromMapping(m)
}

func clusterFromMapping(m *mapping) (*Cluster, error) {
	if err := m.checkKnown("cluster", clusterFields); err != nil {
		return nil, err
	}
	c := &Cluster{File: m.file}
	var err error
	if c.Name, err = m.requiredStr("name", "cluster"); err != nil {
		return nil, err
	}
	what := fmt.Sprintf("cluster %q", c.Name)
	if c.Description, _, err = m.str("description", what); err != nil {
		return nil, err
	}
	if err := c.addSystems(m, what, 0); err != nil {
		return nil, err
	}
	if len(c.Systems) == 0 {
		return nil, errorf(c.File, m.lineOf("systems"), "%s: must list at least one system in systems", what)
	}
	return c, nil
}

// addSystems reads the systems (or subsystems) list of m.
func (c *Cluster) addSystems(m *mapping, what string, depth int) error {
	field := "systems"
	if depth > 0 {
		field = "subsystems"
	}
	if depth > maxSubsystemDepth {
		return errorf(c.File, m.lineOf(field), "%s: subsystems nested more than %d deep", what, maxSubsystemDepth)
	}
	items, _, err := m.list(field, what)
	if err != nil {
		return err
	}
	for _, it := range items {
		entry := what + ": " + field + " entry"
		sm, err := readMapping(c.File, it, entry)
		if err != nil {
			return err
		}
		if err := sm.checkKnown(entry, clusterSystemFields); err != nil {
			return err
		}
		morph, err := sm.requiredStr("morph", entry)
		if err != nil {
			return err
		}
		sysWhat := fmt.Sprintf("%s: system %s", what, morph)
		if _, _, err := sm.mappingField("deploy-defaults", sysWhat); err != nil {
			return err
		}
		if deploy, ok, err := sm.mappingField("deploy", sysWhat); err != nil {
			return err
		} else if ok {
			for _, label := range deploy.keys {
				if _, _, err := deploy.mappingField(label, sysWhat+": deploy"); err != nil {
					return err
				}
			}
		}
		c.Systems = append(c.Systems, ClusterSystem{Morph: morph, Line: sm.line})
		if err := c.addSystems(sm, sysWhat, depth+1); err != nil {
			return err
		}
	}
	return nil
}

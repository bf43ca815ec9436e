package definitions

import (
	"crypto/sha256"
	"encoding/json"
	"slices"

	"distbuild/digest"
)

// cacheKeyFormat versions the encoding below. Change it whenever the encoding
// or the meaning of a field changes, so that no new key can ever collide with
// an old one computed under different rules.
const cacheKeyFormat = "distbuild-cache-key/1"

// The key inputs are plain structs encoded as JSON: encoding/json writes
// struct fields in declaration order and map keys sorted, which makes the
// encoding canonical without hand-written serialization. Only things that can
// change a step's output go in: never a description, an unpetrify-ref or a
// repository URL (the same commit fetched from a mirror builds the same).

type chunkKeyInput struct {
	Format            string                         `json:"format"`
	Kind              string                         `json:"kind"`
	Name              string                         `json:"name"`
	Arch              string                         `json:"arch"`
	Commit            string                         `json:"commit"`
	BuildMode         BuildMode                      `json:"build-mode"`
	Prefix            string                         `json:"prefix"`
	Phases            []Phase                        `json:"phases"`
	MaxJobs           int                            `json:"max-jobs"`
	Devices           []Device                       `json:"devices"`
	Submodules        []Submodule                    `json:"submodules"`
	SystemIntegration map[string]map[string][]string `json:"system-integration"`
	SplitRules        []splitRuleKey                 `json:"split-rules"`
	Dependencies      []string                       `json:"dependencies"`
}

type splitRuleKey struct {
	Artifact string   `json:"artifact"`
	Include  []string `json:"include"`
}

type stratumKeyInput struct {
	Format    string               `json:"format"`
	Kind      string               `json:"kind"`
	Name      string               `json:"name"`
	Arch      string               `json:"arch"`
	Chunks    []string             `json:"chunks"`
	Artifacts []stratumArtifactKey `json:"artifacts"`
}

type stratumArtifactKey struct {
	Name    string   `json:"name"`
	Members []string `json:"members"` // "<chunk cache key>/<split artifact>"
}

type systemKeyInput struct {
	Format string             `json:"format"`
	Kind   string             `json:"kind"`
	Name   string             `json:"name"`
	Arch   string             `json:"arch"`
	Strata []systemStratumKey `json:"strata"`
}

type systemStratumKey struct {
	CacheKey  string   `json:"cache-key"`
	Artifacts []string `json:"artifacts"`
}

func hashKey(v any) digest.CacheKey {
	return digest.CacheKey(sha256.Sum256(keyDocument(v)))
}

// keyDocument is the canonical encoding of a key input.
func keyDocument(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		// Only strings, ints, slices and maps of them are encoded.
		panic("definitions: cache key input not encodable: " + err.Error())
	}
	return data
}

// CacheKeyDocument is the canonical JSON document whose SHA-256 is the
// step's cache key. Signed provenance carries it, so that anyone can see
// exactly what the key covers and check it against the key.
func (s *Step) CacheKeyDocument() []byte {
	switch s.Kind {
	case KindChunk:
		return keyDocument(chunkKeyDoc(s))
	case KindStratum:
		return keyDocument(stratumKeyDoc(s))
	}
	return keyDocument(systemKeyDoc(s))
}

// chunkKey covers the chunk's source commit, how it is built, how its output
// is split, and (through their keys) everything it is built on. Dependency
// keys are sorted: the order build-depends are written in does not change
// what is staged.
func chunkKey(s *Step) digest.CacheKey { return hashKey(chunkKeyDoc(s)) }

// chunkKeyDoc is what chunkKey hashes.
func chunkKeyDoc(s *Step) chunkKeyInput {
	c := s.Chunk
	in := chunkKeyInput{
		Format:            cacheKeyFormat,
		Kind:              KindChunk.String(),
		Name:              s.DefinedName,
		Arch:              s.Arch,
		Commit:            c.Commit,
		BuildMode:         c.BuildMode,
		Prefix:            c.Prefix,
		Phases:            c.Phases,
		MaxJobs:           c.MaxJobs,
		Devices:           c.Devices,
		Submodules:        c.Submodules,
		SystemIntegration: c.SystemIntegration,
		Dependencies:      depKeys(s),
	}
	for _, r := range c.SplitRules {
		in.SplitRules = append(in.SplitRules, splitRuleKey{Artifact: r.Artifact, Include: r.Include})
	}
	return in
}

// stratumKey covers which chunk artifacts go into which stratum artifact.
func stratumKey(s *Step) digest.CacheKey { return hashKey(stratumKeyDoc(s)) }

// stratumKeyDoc is what stratumKey hashes.
func stratumKeyDoc(s *Step) stratumKeyInput {
	in := stratumKeyInput{Format: cacheKeyFormat, Kind: KindStratum.String(), Name: s.DefinedName, Arch: s.Arch, Chunks: depKeys(s)}
	for _, a := range s.Stratum.Artifacts {
		k := stratumArtifactKey{Name: a.Name, Members: make([]string, 0, len(a.Members))}
		for _, m := range a.Members {
			k.Members = append(k.Members, m.Chunk.CacheKey.String()+"/"+m.Artifact)
		}
		in.Artifacts = append(in.Artifacts, k)
	}
	return in
}

// systemKey covers the strata and which of their artifacts the system takes.
// Configuration extensions are deployment-time only and stay out.
func systemKey(s *Step) digest.CacheKey { return hashKey(systemKeyDoc(s)) }

// systemKeyDoc is what systemKey hashes.
func systemKeyDoc(s *Step) systemKeyInput {
	in := systemKeyInput{Format: cacheKeyFormat, Kind: KindSystem.String(), Name: s.DefinedName, Arch: s.Arch}
	for _, st := range s.System.Strata {
		in.Strata = append(in.Strata, systemStratumKey{CacheKey: st.Stratum.CacheKey.String(), Artifacts: st.Artifacts})
	}
	return in
}

func depKeys(s *Step) []string {
	keys := make([]string, len(s.Deps))
	for i, d := range s.Deps {
		keys[i] = d.CacheKey.String()
	}
	slices.Sort(keys)
	return keys
}

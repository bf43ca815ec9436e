package controller

import (
	"bytes"
	"fmt"
	"html"
	"time"

	"distbuild/internal/timeline"
	pb "distbuild/proto/distbuild/v1"
)

// Geometry of a step's performance graphs, in SVG user units.
const (
	profileLabel  = 90
	profileWidth  = 800
	profilePhases = 26
	profilePlot   = 110
	profileGap    = 22
)

var phaseColours = []string{"#5c6bc0", "#26a69a", "#ffa726", "#ab47bc", "#8d6e63", "#29b6f6", "#d4e157", "#ec407a"}

// profileSVG draws where a step's time went: its phases on one band, and
// below it the CPU cores busy and the resident memory of its commands over
// time, on one time axis. Drawn on the server, so it needs no script.
func profileSVG(p *pb.StepProfile) []byte {
	var b bytes.Buffer
	if p == nil {
		b.WriteString(`<svg xmlns="http://www.w3.org/2000/svg" class="profile empty" width="400" height="24" font-family="sans-serif" font-size="12"><text x="0" y="16">No profile: the step has not ended, or its worker sent none.</text></svg>`)
		return b.Bytes()
	}
	span := p.GetDuration().AsDuration()
	for _, ph := range p.Phases {
		span = max(span, ph.GetStart().AsDuration()+ph.GetDuration().AsDuration())
	}
	for _, s := range p.Samples {
		span = max(span, s.GetOffset().AsDuration())
	}
	if span <= 0 {
		span = time.Second
	}
	x := func(d time.Duration) float64 { return profileLabel + float64(d)/float64(span)*profileWidth }
	width := profileLabel + profileWidth + 10
	cpuTop := profilePhases + profileGap
	memTop := cpuTop + profilePlot + profileGap
	height := memTop + profilePlot + 24
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="profile" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)

	// Phases.
	b.WriteString(`<text x="0" y="17">phases</text>` + "\n")
	for i, ph := range p.Phases {
		x0, x1 := x(ph.GetStart().AsDuration()), x(ph.GetStart().AsDuration()+ph.GetDuration().AsDuration())
		name := html.EscapeString(ph.Name)
		fmt.Fprintf(&b, `<rect class="phase" data-phase="%s" x="%.1f" y="2" width="%.1f" height="%d" fill="%s"><title>%s: %s</title></rect>`+"\n",
			name, x0, max(x1-x0, 1), profilePhases-4, phaseColours[i%len(phaseColours)], name, timeline.ShortDuration(ph.GetDuration().AsDuration()))
		if x1-x0 > float64(7*len(ph.Name)) {
			fmt.Fprintf(&b, `<text x="%.1f" y="17" fill="#fff" pointer-events="none">%s</text>`+"\n", x0+3, name)
		}
	}

	// CPU and memory, each scaled to its own peak.
	var peakCPU float64
	var peakMem int64
	for _, s := range p.Samples {
		peakCPU = max(peakCPU, s.CpuCores)
		peakMem = max(peakMem, s.MemoryBytes)
	}
	plot := func(class, label, peakText string, top int, value func(*pb.ResourceSample) float64, peak float64) {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="#fafafa" stroke="#ddd"/>`+"\n", profileLabel, top, profileWidth, profilePlot)
		fmt.Fprintf(&b, `<text x="0" y="%d">%s</text><text x="0" y="%d" fill="#666">peak %s</text>`+"\n", top+14, label, top+28, peakText)
		if len(p.Samples) == 0 {
			fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#666">no samples (the commands ran for less than a sample interval)</text>`+"\n", profileLabel+8, top+profilePlot/2)
			return
		}
		if peak <= 0 {
			peak = 1
		}
		fmt.Fprintf(&b, `<polyline class="%s" fill="none" stroke-width="1.5" points="`, class)
		for i, s := range p.Samples {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%.1f,%.1f", x(s.GetOffset().AsDuration()), float64(top+profilePlot)-value(s)/peak*float64(profilePlot-4))
		}
		b.WriteString(`"/>` + "\n")
		for _, s := range p.Samples {
			fmt.Fprintf(&b, `<circle class="%s-point" cx="%.1f" cy="%.1f" r="2"/>`+"\n", class,
				x(s.GetOffset().AsDuration()), float64(top+profilePlot)-value(s)/peak*float64(profilePlot-4))
		}
	}
	plot("cpu", "CPU cores", fmt.Sprintf("%.2f", peakCPU), cpuTop, func(s *pb.ResourceSample) float64 { return s.CpuCores }, peakCPU)
	plot("memory", "memory", bytesText(peakMem), memTop, func(s *pb.ResourceSample) float64 { return float64(s.MemoryBytes) }, float64(peakMem))

	// The time axis.
	fmt.Fprintf(&b, `<text x="%d" y="%d">0s</text><text x="%d" y="%d" text-anchor="end">%s</text>`+"\n",
		profileLabel, height-6, profileLabel+profileWidth, height-6, timeline.ShortDuration(span))
	b.WriteString("</svg>\n")
	return b.Bytes()
}

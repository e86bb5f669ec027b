# tests/bench/plot.gp - draws doc/bench-concurrency.png from the table
# tests/bench/plot.sh writes (only draws: it measures nothing).
# Call: gnuplot -e "datafile='F'; outfile='F.png'; subtitle='text'" plot.gp
# Columns: sessions, then RCPT/s, median ms, p99 ms for cached, cold, bare LMTP.
set terminal pngcairo size 1200,500 font "sans,10"
set output outfile
set multiplot layout 1,2 title "milter-nexthop RCPT validation vs concurrency\n".subtitle
set grid
set xrange [0.8:25]
set logscale x 2
set xtics (1, 2, 5, 10, 20)
set xlabel "concurrent sessions"
set logscale y 10
set ylabel "RCPTs per second (log)"
set title "Throughput"
set key bottom right
plot datafile using 1:2 with linespoints lw 2 pt 7 title "milter, cached", \
     ''       using 1:5 with linespoints lw 2 pt 5 title "milter, cold (Dovecot LMTP probe)", \
     ''       using 1:8 with linespoints lw 2 pt 9 dt 2 title "bare LMTP RCPT (reference)"
set ylabel "RCPT latency, ms (log)"
set title "Latency: median (solid), 99th percentile (dotted)"
set key top left
plot datafile using 1:3 with linespoints lw 2 pt 7 lc 1 title "milter, cached", \
     ''       using 1:4 with linespoints lw 1 pt 6 lc 1 dt 3 notitle, \
     ''       using 1:6 with linespoints lw 2 pt 5 lc 2 title "milter, cold", \
     ''       using 1:7 with linespoints lw 1 pt 4 lc 2 dt 3 notitle, \
     ''       using 1:9 with linespoints lw 2 pt 9 lc 3 dt 2 title "bare LMTP RCPT", \
     ''       using 1:10 with linespoints lw 1 pt 8 lc 3 dt 3 notitle
unset multiplot

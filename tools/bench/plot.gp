# Throughput of each limiter as a ratio to a bare XDP_DROP on the same path:
#   gnuplot -e "dir='docs/bench'" tools/bench/plot.gp
set terminal pngcairo size 1000,480 font ",11"
set output dir."/throughput.png"
set title "Packet rate on the veth path, as a fraction of a bare XDP_DROP (higher is better)" noenhanced
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:1.1]
set ytics 0.1
set grid ytics
set key top right
set xtics rotate by -20 noenhanced
set datafile separator whitespace
plot dir."/throughput.dat" using 2:xtic(stringcolumn(1)) title "xthrottle" lc rgb "#1f77b4", \
     "" using 3 title "iptables hashlimit" lc rgb "#ff7f0e", \
     "" using 4 title "nft meter" lc rgb "#2ca02c"

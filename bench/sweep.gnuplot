# Throughput against delivery.max_in_flight, with the bare-consumer ceiling of each run.
# gnuplot -e "datafile='sweep.dat'; outfile='plot.png'" bench/sweep.gnuplot
set terminal pngcairo size 1000,600 font ",11" noenhanced
set output outfile
set title "route-delivery deliveries/s vs delivery.max_in_flight (open marks: ceiling of the same run)"
set xlabel "delivery.max_in_flight"
set ylabel "jobs per second"
set logscale x 2
set yrange [0:*]
set grid
set key outside right top
set datafile missing "NaN"
plot datafile using 1:2 with linespoints lw 2 pt 7 lc rgb "#1b9e77" title "postgresql no-op", \
     datafile using 1:3 with points pt 6 lc rgb "#1b9e77" title "ceiling, same run (pg)", \
     datafile using 1:4 with linespoints lw 2 pt 5 lc rgb "#d95f02" title "webhook -> nginx, signed", \
     datafile using 1:5 with points pt 4 lc rgb "#d95f02" title "ceiling, same run (webhook)", \
     datafile using 1:6 with linespoints lw 2 pt 9 lc rgb "#7570b3" title "mqtt_republish QoS 1", \
     datafile using 1:7 with points pt 8 lc rgb "#7570b3" title "ceiling, same run (mqtt)"

module example.com/edgesign

go 1.19

module ambit.test/interop/hbonepeer

go 1.19

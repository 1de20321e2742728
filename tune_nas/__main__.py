from tune_nas.launch import exit_now, main

exit_now(main())
